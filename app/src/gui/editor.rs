//! The editing state behind the canvas, free of UI code so it can be tested directly:
//! the image, its mask (white = repaint), brush strokes, mask operations, undo / redo of
//! strokes and results, and the history of results.

use burn::tensor::Device;
use clearpaint_core::kernels;
use clearpaint_core::pipelines::outpaint::{self, Extend, Prefill};
use image::{GrayImage, Luma, RgbaImage};

/// What an undo step restores.
#[derive(Clone)]
struct Snapshot {
    image: RgbaImage,
    mask: GrayImage,
    params: Option<String>,
}

/// Undo depth (each step holds a mask, and results an image too).
const MAX_UNDO: usize = 40;

pub struct Editor {
    pub image: RgbaImage,
    pub has_alpha: bool,
    pub mask: GrayImage,
    /// Brush diameter in image pixels.
    pub brush: f32,
    /// The share of the radius painted at full value (1 = a hard edge); beyond it the brush
    /// falls off smoothly to 0 at the rim.
    pub hardness: f32,
    /// The grey a stroke paints, 0..1 (a soft mask's strength; erasing lowers to 1 - opacity).
    pub opacity: f32,
    pub erase: bool,
    undo: Vec<Snapshot>,
    redo: Vec<Snapshot>,
    /// The input of the last run, for before/after comparison.
    pub before: Option<RgbaImage>,
    /// Results of earlier runs, newest last.
    pub history: Vec<RgbaImage>,
    /// The generation parameters (A1111 `parameters` text) of each history entry.
    pub history_params: Vec<String>,
    /// The parameters that made the current image, if it is a result (saved with it).
    pub params: Option<String>,
    /// Where mask operations run (the CPU; the shared GPU in the app when there is one).
    pub device: Device,
    /// Bumped on every change except brush strokes, so the UI knows when to re-upload
    /// textures.
    pub revision: u64,
    /// The mask region brush strokes changed since the UI last took it (`take_dirty`):
    /// `(x0, y0, x1, y1)`, exclusive ends. Strokes only re-upload this part of the overlay,
    /// so painting stays smooth on large images.
    dirty: Option<(u32, u32, u32, u32)>,
}

impl Editor {
    pub fn new(image: RgbaImage, has_alpha: bool) -> Self {
        let (w, h) = image.dimensions();
        Editor {
            mask: GrayImage::new(w, h),
            image,
            has_alpha,
            brush: 24.0,
            hardness: 1.0,
            opacity: 1.0,
            erase: false,
            undo: Vec::new(),
            redo: Vec::new(),
            before: None,
            history: Vec::new(),
            history_params: Vec::new(),
            device: Device::flex(),
            params: None,
            revision: 0,
            dirty: None,
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            image: self.image.clone(),
            mask: self.mask.clone(),
            params: self.params.clone(),
        }
    }

    fn push_undo(&mut self) {
        self.undo.push(self.snapshot());
        if self.undo.len() > MAX_UNDO {
            self.undo.remove(0);
        }
        self.redo.clear();
    }

    /// Call once when a stroke (or a mask operation) starts: one undo step per stroke.
    pub fn begin_stroke(&mut self) {
        self.push_undo();
    }

    /// Paints (or erases) a segment of the current stroke, in image coordinates. A stroke
    /// never lightens what it paints over (grey levels take the larger value) nor darkens what
    /// it erases beyond `1 - opacity`, so overlapping segments do not build up.
    pub fn paint(&mut self, from: (f32, f32), to: (f32, f32)) {
        let r = (self.brush / 2.0).max(0.5);
        let (w, h) = self.mask.dimensions();
        let x0 = (from.0.min(to.0) - r).floor().max(0.0) as u32;
        let y0 = (from.1.min(to.1) - r).floor().max(0.0) as u32;
        let x1 = ((from.0.max(to.0) + r).ceil() as u32).min(w);
        let y1 = ((from.1.max(to.1) + r).ceil() as u32).min(h);
        let (dx, dy) = (to.0 - from.0, to.1 - from.1);
        let len2 = dx * dx + dy * dy;
        for y in y0..y1 {
            for x in x0..x1 {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let t = if len2 > 0.0 {
                    (((px - from.0) * dx + (py - from.1) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (cx, cy) = (from.0 + t * dx, from.1 + t * dy);
                let d2 = (px - cx).powi(2) + (py - cy).powi(2);
                if d2 <= r * r {
                    let a = self.brush_alpha(d2.sqrt() / r);
                    let old = self.mask.get_pixel(x, y)[0];
                    let v = if self.erase {
                        old.min((255.0 * (1.0 - a)).round() as u8)
                    } else {
                        old.max((255.0 * a).round() as u8)
                    };
                    self.mask.put_pixel(x, y, Luma([v]));
                }
            }
        }
        if x0 < x1 && y0 < y1 {
            self.dirty = Some(match self.dirty {
                Some((a, b, c, d)) => (a.min(x0), b.min(y0), c.max(x1), d.max(y1)),
                None => (x0, y0, x1, y1),
            });
        }
    }

    /// The brush's coverage at `t` = distance / radius (0..=1): `opacity` inside the hard
    /// core, then a smoothstep down to 0 at the rim.
    fn brush_alpha(&self, t: f32) -> f32 {
        let core = self.hardness.clamp(0.0, 1.0);
        let o = self.opacity.clamp(0.0, 1.0);
        if t <= core {
            return o;
        }
        let u = ((1.0 - t) / (1.0 - core)).clamp(0.0, 1.0);
        o * u * u * (3.0 - 2.0 * u)
    }

    /// The mask region strokes changed since the last call (and forgets it).
    pub fn take_dirty(&mut self) -> Option<(u32, u32, u32, u32)> {
        self.dirty.take()
    }

    /// Softens the mask edge with a separable Gaussian of standard deviation `sigma` pixels
    /// (the kernel spans 3 sigma each side, edges clamp), for a gradual blend at the border.
    pub fn feather_mask(&mut self, sigma: f32) {
        if sigma <= 0.0 {
            return;
        }
        self.push_undo();
        self.mask = kernels::feather_mask_image(&self.mask, sigma, &self.device);
        self.revision += 1;
    }

    /// Makes result `i` of the history the current image again (undoable), e.g. to continue
    /// from an earlier result.
    pub fn restore_history(&mut self, i: usize) -> bool {
        let Some(r) = self.history.get(i).cloned() else {
            return false;
        };
        if r.dimensions() != self.image.dimensions() {
            return false;
        }
        self.push_undo();
        self.image = r;
        self.params = self.history_params.get(i).cloned();
        self.revision += 1;
        true
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    pub fn undo(&mut self) -> bool {
        let Some(s) = self.undo.pop() else {
            return false;
        };
        self.redo.push(self.snapshot());
        self.image = s.image;
        self.mask = s.mask;
        self.params = s.params;
        self.revision += 1;
        self.dirty = None;
        true
    }

    pub fn redo(&mut self) -> bool {
        let Some(s) = self.redo.pop() else {
            return false;
        };
        self.undo.push(self.snapshot());
        self.image = s.image;
        self.mask = s.mask;
        self.params = s.params;
        self.revision += 1;
        self.dirty = None;
        true
    }

    pub fn invert_mask(&mut self) {
        self.push_undo();
        for p in self.mask.pixels_mut() {
            p[0] = 255 - p[0];
        }
        self.revision += 1;
    }

    pub fn clear_mask(&mut self) {
        self.push_undo();
        for p in self.mask.pixels_mut() {
            p[0] = 0;
        }
        self.revision += 1;
    }

    /// Grows (`r > 0`) or shrinks (`r < 0`) the mask by `|r|` pixels (square structuring
    /// element; the `mask_morph` kernel's reference on the CPU).
    pub fn grow_mask(&mut self, r: i32) {
        if r == 0 {
            return;
        }
        self.push_undo();
        self.mask = kernels::grow_mask_image(&self.mask, r, &self.device);
        self.revision += 1;
    }

    /// Replaces the mask (e.g. loaded from a file); it must have the image's size.
    pub fn set_mask(&mut self, mask: GrayImage) -> Result<(), String> {
        if mask.dimensions() != self.image.dimensions() {
            return Err(format!(
                "the mask is {}x{}, the image {}x{}",
                mask.width(),
                mask.height(),
                self.image.width(),
                self.image.height()
            ));
        }
        self.push_undo();
        self.mask = mask;
        self.revision += 1;
        Ok(())
    }

    /// Takes a result: the current image becomes the "before", the result the image (undoable).
    pub fn apply_result(&mut self, result: RgbaImage, params: String) {
        self.push_undo();
        self.before = Some(self.image.clone());
        self.history.push(result.clone());
        self.history_params.push(params.clone());
        self.params = Some(params);
        self.image = result;
        self.revision += 1;
    }

    /// Grows the canvas by `e` for outpainting (undoable): the new border pre-filled with
    /// `fill` and masked, the mask inside kept. The earlier "before" no longer lines up, so it
    /// is dropped.
    pub fn extend_canvas(&mut self, e: Extend, fill: Prefill, seed: u64) -> Result<(), String> {
        let (w, h) = self.image.dimensions();
        let (nw, nh) = (w + e.left + e.right, h + e.top + e.bottom);
        if nw as u64 * nh as u64 > clearpaint_core::imaging::max_image_pixels() {
            return Err(format!(
                "extending to {nw}x{nh} would make the image larger than images may be"
            ));
        }
        self.push_undo();
        let (image, mask) = outpaint::extend(&self.image, Some(&self.mask), e, fill, seed);
        self.image = image;
        self.mask = mask;
        self.before = None;
        self.revision += 1;
        Ok(())
    }

    pub fn mask_pixels(&self) -> usize {
        self.mask.pixels().filter(|p| p[0] >= 128).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn editor() -> Editor {
        Editor::new(RgbaImage::new(64, 48), false)
    }

    #[test]
    fn strokes_paint_and_erase_and_undo_exactly() {
        let mut e = editor();
        e.brush = 10.0;
        e.begin_stroke();
        e.paint((10.0, 10.0), (40.0, 10.0));
        let painted = e.mask.clone();
        assert_eq!(painted.get_pixel(25, 10)[0], 255);
        assert_eq!(painted.get_pixel(25, 30)[0], 0);
        let n = e.mask_pixels();
        assert!(n > 250 && n < 400, "{n}");
        e.erase = true;
        e.begin_stroke();
        e.paint((25.0, 5.0), (25.0, 15.0));
        assert_eq!(e.mask.get_pixel(25, 10)[0], 0);
        assert!(e.undo());
        assert_eq!(e.mask, painted);
        assert!(e.undo());
        assert_eq!(e.mask_pixels(), 0);
        assert!(!e.undo());
        assert!(e.redo());
        assert_eq!(e.mask, painted);
    }

    #[test]
    fn soft_brushes_paint_grey_levels_that_do_not_build_up() {
        let mut e = editor();
        e.brush = 20.0;
        e.hardness = 0.5;
        e.opacity = 0.4;
        e.begin_stroke();
        e.paint((32.0, 24.0), (32.0, 24.0));
        let centre = e.mask.get_pixel(31, 23)[0];
        assert_eq!(centre, 102, "the core paints the opacity (0.4 x 255)");
        let (mid, rim) = (e.mask.get_pixel(38, 23)[0], e.mask.get_pixel(41, 23)[0]);
        assert!(mid < centre && mid > rim, "falls off: {centre} {mid} {rim}");
        assert_eq!(e.mask.get_pixel(45, 23)[0], 0, "nothing past the radius");
        e.paint((32.0, 24.0), (32.0, 24.0));
        assert_eq!(
            e.mask.get_pixel(31, 23)[0],
            centre,
            "repeated dabs do not add up"
        );
        e.opacity = 1.0;
        e.hardness = 1.0;
        e.paint((32.0, 24.0), (32.0, 24.0));
        assert_eq!(e.mask.get_pixel(38, 23)[0], 255);
        e.erase = true;
        e.opacity = 0.25;
        e.paint((32.0, 24.0), (32.0, 24.0));
        assert_eq!(
            e.mask.get_pixel(31, 23)[0],
            191,
            "erasing at 25% leaves 75%"
        );
    }

    #[test]
    fn mask_operations() {
        let mut e = editor();
        e.brush = 1.0;
        e.begin_stroke();
        e.paint((20.5, 20.5), (20.5, 20.5));
        assert_eq!(e.mask_pixels(), 1);
        e.grow_mask(2);
        assert_eq!(e.mask_pixels(), 25);
        e.grow_mask(-1);
        assert_eq!(e.mask_pixels(), 9);
        e.invert_mask();
        assert_eq!(e.mask_pixels(), 64 * 48 - 9);
        e.clear_mask();
        assert_eq!(e.mask_pixels(), 0);
        assert!(e.set_mask(GrayImage::new(3, 3)).is_err());
    }

    #[test]
    fn strokes_mark_only_the_region_they_touch() {
        let mut e = editor();
        let rev = e.revision;
        e.brush = 4.0;
        e.begin_stroke();
        e.paint((10.0, 10.0), (20.0, 10.0));
        e.paint((20.0, 10.0), (20.0, 30.0));
        assert_eq!(e.revision, rev, "strokes do not force a full re-upload");
        assert_eq!(e.take_dirty(), Some((8, 8, 22, 32)));
        assert_eq!(e.take_dirty(), None);
    }

    #[test]
    fn feather_softens_the_edge_and_keeps_the_inside() {
        let mut e = editor();
        let mut m = GrayImage::new(64, 48);
        for y in 10..38 {
            for x in 10..54 {
                m.put_pixel(x, y, Luma([255]));
            }
        }
        e.set_mask(m.clone()).unwrap();
        e.feather_mask(2.0);
        assert_eq!(
            e.mask.get_pixel(32, 24)[0],
            255,
            "deep inside stays fully masked"
        );
        assert_eq!(e.mask.get_pixel(0, 0)[0], 0, "far outside stays unmasked");
        let edge = e.mask.get_pixel(10, 24)[0];
        assert!(edge > 100 && edge < 160, "the edge is half-way: {edge}");
        let outside = e.mask.get_pixel(8, 24)[0];
        assert!(outside > 0 && outside < edge, "{outside}");
        assert!(e.undo());
        assert_eq!(e.mask, m);
    }

    #[test]
    fn an_earlier_result_can_be_restored() {
        let mut e = editor();
        let r1 = RgbaImage::from_pixel(64, 48, image::Rgba([1, 1, 1, 255]));
        let r2 = RgbaImage::from_pixel(64, 48, image::Rgba([2, 2, 2, 255]));
        e.apply_result(r1.clone(), "one".into());
        e.apply_result(r2.clone(), "two".into());
        assert!(e.restore_history(0));
        assert_eq!(e.image, r1);
        assert_eq!(e.params.as_deref(), Some("one"));
        assert_eq!(e.history.len(), 2);
        assert!(e.undo());
        assert_eq!(e.image, r2);
        assert!(!e.restore_history(5));
    }

    #[test]
    fn results_are_undoable_and_kept_in_history() {
        let mut e = editor();
        let result = RgbaImage::from_pixel(64, 48, image::Rgba([9, 9, 9, 255]));
        e.apply_result(result.clone(), "p".into());
        assert_eq!(e.image, result);
        assert_eq!(e.history.len(), 1);
        assert!(e.undo());
        assert_eq!(e.image, RgbaImage::new(64, 48));
        assert!(e.redo());
        assert_eq!(e.image, result);
    }
}
