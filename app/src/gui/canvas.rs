//! The canvas: the image and mask-overlay textures, the before/after compare, zoom, pan and
//! painting the mask.

use eframe::egui;
use image::RgbaImage;

use super::app::ClearpaintApp;
use super::editor::Editor;

/// The image and mask-overlay textures on screen, for the editor revision and overlay colour
/// they were made of.
pub(super) struct Textures {
    revision: u64,
    colour: egui::Color32,
    image: egui::TextureHandle,
    mask: egui::TextureHandle,
}

/// The mask overlay of rectangle `r` (x0, y0, x1, y1): `colour` with its alpha scaled by the
/// mask value (so feathered edges show as a gradient).
fn overlay(
    mask: &image::GrayImage,
    r: (u32, u32, u32, u32),
    colour: egui::Color32,
) -> egui::ColorImage {
    let (w, h) = ((r.2 - r.0) as usize, (r.3 - r.1) as usize);
    let [cr, cg, cb, ca] = colour.to_srgba_unmultiplied();
    let mut px = Vec::with_capacity(w * h * 4);
    for y in r.1..r.3 {
        let row = &mask.as_raw()[(y * mask.width()) as usize..][..mask.width() as usize];
        for &v in &row[r.0 as usize..r.2 as usize] {
            let a = (ca as u32 * v as u32 + 127) / 255;
            px.extend_from_slice(&[cr, cg, cb, a as u8]);
        }
    }
    egui::ColorImage::from_rgba_unmultiplied([w, h], &px)
}

impl ClearpaintApp {
    /// The image and mask-overlay textures, uploaded when they changed: the whole image after
    /// a run, undo or mask operation; only the touched rectangle of the overlay while painting.
    pub(super) fn textures(
        &mut self,
        ctx: &egui::Context,
    ) -> Option<(egui::TextureId, egui::TextureId, egui::Vec2)> {
        let colour = self.settings.mask_colour;
        let max_side = ctx.input(|i| i.max_texture_side).max(1) as u32;
        let ed = self.editor.as_mut()?;
        let (w, h) = ed.image.dimensions();
        // Images larger than the GPU's largest texture are shown at 1/f resolution (editing
        // and results stay at full resolution).
        let f = w.max(h).div_ceil(max_side).max(1);
        let fresh =
            !matches!(&self.texture, Some(t) if t.revision == ed.revision && t.colour == colour);
        if fresh || f > 1 {
            let dirty = ed.take_dirty();
            if fresh || dirty.is_some() {
                let (img, mask) = if f > 1 {
                    let (sw, sh) = (w.div_ceil(f), h.div_ceil(f));
                    (
                        image::RgbaImage::from_fn(sw, sh, |x, y| *ed.image.get_pixel(x * f, y * f)),
                        image::GrayImage::from_fn(sw, sh, |x, y| *ed.mask.get_pixel(x * f, y * f)),
                    )
                } else {
                    (ed.image.clone(), ed.mask.clone())
                };
                let size = [img.width() as usize, img.height() as usize];
                let ov = overlay(&mask, (0, 0, img.width(), img.height()), colour);
                let img = egui::ColorImage::from_rgba_unmultiplied(size, img.as_raw());
                match (&mut self.texture, fresh) {
                    (Some(t), false) => t.mask.set(ov, egui::TextureOptions::NEAREST),
                    _ => {
                        self.texture = Some(Textures {
                            revision: ed.revision,
                            colour,
                            image: ctx.load_texture("image", img, egui::TextureOptions::NEAREST),
                            mask: ctx.load_texture("mask", ov, egui::TextureOptions::NEAREST),
                        })
                    }
                }
            }
        } else if let Some(r) = ed.take_dirty()
            && let Some(t) = &mut self.texture
        {
            let ov = overlay(&ed.mask, r, colour);
            t.mask.set_partial(
                [r.0 as usize, r.1 as usize],
                ov,
                egui::TextureOptions::NEAREST,
            );
        }
        let image_size = egui::vec2(w as f32, h as f32);
        let t = self.texture.as_ref()?;
        Some((t.image.id(), t.mask.id(), image_size))
    }

    /// The "before" image of the last run, as a texture (cached per revision).
    pub(super) fn before_texture(&mut self, ctx: &egui::Context) -> Option<egui::TextureId> {
        let ed = self.editor.as_ref()?;
        let before = ed.before.as_ref()?;
        if !matches!(&self.before_tex, Some((rev, _)) if *rev == ed.revision) {
            let (w, h) = (before.width() as usize, before.height() as usize);
            let t = ctx.load_texture(
                "before",
                egui::ColorImage::from_rgba_unmultiplied([w, h], before.as_raw()),
                egui::TextureOptions::NEAREST,
            );
            self.before_tex = Some((ed.revision, t));
        }
        self.before_tex.as_ref().map(|(_, t)| t.id())
    }

    /// Times one brush stroke on a `size` x `size` image: per frame, the mask update plus the
    /// overlay texture update (what the canvas does while painting). Returns the milliseconds
    /// of each frame.
    pub fn stroke_benchmark(size: u32, frames: usize) -> Vec<f64> {
        let ctx = egui::Context::default();
        // A desktop GPU's texture limit (egui's default without a renderer is 2048).
        let mut out = ctx.run_ui(
            egui::RawInput {
                max_texture_side: Some(16384),
                ..Default::default()
            },
            |_| {},
        );
        out.textures_delta.clear();
        // What a renderer does each frame: take the queued texture updates.
        let hand_off = |ctx: &egui::Context| ctx.tex_manager().write().take_delta().clear();
        let mut app = ClearpaintApp::new();
        app.editor = Some(Editor::new(RgbaImage::new(size, size), false));
        app.textures(&ctx);
        hand_off(&ctx);
        let ed = app.editor.as_mut().expect("editor");
        ed.brush = 64.0;
        ed.begin_stroke();
        let mut times = Vec::with_capacity(frames);
        let mut last = (size as f32 * 0.1, size as f32 * 0.5);
        for i in 1..=frames {
            // A mouse moves a few dozen image pixels between frames at 100% zoom.
            let t = i as f32 / frames as f32;
            let cur = (
                size as f32 * (0.1 + 0.8 * t),
                size as f32 * (0.5 + 0.2 * (t * 6.0).sin()),
            );
            let start = std::time::Instant::now();
            app.editor.as_mut().expect("editor").paint(last, cur);
            app.textures(&ctx);
            hand_off(&ctx);
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            last = cur;
        }
        times
    }

    /// The image with the mask overlay (or the before/after compare), zoom, pan and the
    /// brush: painting the mask with the primary button.
    pub(super) fn canvas(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        let Some((img_tex, mask_tex, size)) = self.textures(&ctx) else {
            ui.centered_and_justified(|ui| ui.label("No image open"));
            return;
        };
        let (resp, painter) =
            ui.allocate_painter(ui.available_size(), egui::Sense::click_and_drag());
        let avail = resp.rect;
        let fit = (avail.width() / size.x)
            .min(avail.height() / size.y)
            .min(1.0);
        if self.zoom < 0.0 {
            self.zoom = 1.0 / fit; // "100%": one image pixel per screen point
        }
        if resp.hovered() {
            let (scroll, cmd) = ctx.input(|i| (i.smooth_scroll_delta.y, i.modifiers.command));
            if cmd && scroll != 0.0 {
                self.zoom = (self.zoom * (1.0 + scroll / 400.0)).clamp(0.05, 32.0);
            }
        }
        let space = ctx.input(|i| i.key_down(egui::Key::Space)) && !ctx.egui_wants_keyboard_input();
        if resp.dragged_by(egui::PointerButton::Middle)
            || (space && resp.dragged_by(egui::PointerButton::Primary))
        {
            self.pan += resp.drag_delta();
        }
        let scale = fit * self.zoom;
        let rect = egui::Rect::from_center_size(avail.center() + self.pan, size * scale);
        let compare = ctx.input(|i| i.key_down(egui::Key::C)) && !ctx.egui_wants_keyboard_input();
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        let split = if compare { 1.0 } else { self.compare_split };
        let before = if split > 0.0 {
            self.before_texture(&ctx)
        } else {
            None
        };
        painter.image(img_tex, rect, uv, egui::Color32::WHITE);
        match before {
            Some(b) => {
                // Before on the left of the divider, after (with the mask) on the right.
                let x = rect.min.x + rect.width() * split;
                let left = egui::Rect::from_min_max(rect.min, egui::pos2(x, rect.max.y));
                let left_uv =
                    egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(split, 1.0));
                painter.image(b, left, left_uv, egui::Color32::WHITE);
                if split < 1.0 {
                    painter.vline(
                        x,
                        rect.y_range(),
                        egui::Stroke::new(2.0, egui::Color32::WHITE),
                    );
                }
            }
            None if self.show_mask => {
                painter.image(mask_tex, rect, uv, egui::Color32::WHITE);
            }
            None => {}
        }
        let to_image = |p: egui::Pos2| ((p.x - rect.min.x) / scale, (p.y - rect.min.y) / scale);
        let Some(ed) = &mut self.editor else { return };
        if let Some(p) = resp.hover_pos() {
            painter.circle_stroke(
                p,
                ed.brush * scale / 2.0,
                egui::Stroke::new(1.0, egui::Color32::WHITE),
            );
        }
        if space {
            return;
        }
        if resp.drag_started_by(egui::PointerButton::Primary) {
            self.show_mask = true;
            ed.begin_stroke();
            self.last_pos = None;
        }
        if (resp.dragged_by(egui::PointerButton::Primary)
            || resp.drag_started_by(egui::PointerButton::Primary))
            && let Some(p) = resp.interact_pointer_pos()
        {
            let cur = to_image(p);
            let from = self.last_pos.unwrap_or(cur);
            ed.paint(from, cur);
            self.last_pos = Some(cur);
        }
        if resp.drag_stopped() {
            self.last_pos = None;
        }
    }
}
