//! Inpainting without model weights.
//!
//! * [`telea`]: fast-marching fill (Telea 2004): pixels are filled from the boundary inwards,
//!   each as a weighted average of already-known neighbours (direction, distance and level-set
//!   weights). Right for thin masks: scratches, text, wires.
//! * [`patchmatch`]: exemplar-based completion (Wexler et al. 2007 with Barnes et al.'s
//!   PatchMatch nearest-neighbour search): coarse-to-fine over an image pyramid, alternating a
//!   randomized nearest-neighbour field (random init, propagation, random search) from patches
//!   touching the hole to patches entirely outside it, and patch voting. Right for objects and
//!   textures.
//! * [`fill`] picks one: Telea when no hole pixel is more than a few pixels from the boundary.
//!
//! Pixels outside the mask are never changed; alpha is kept.

use image::{GrayImage, RgbaImage};

/// Which classical method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Telea for thin masks, PatchMatch otherwise.
    Auto,
    Telea,
    PatchMatch,
}

/// A float RGB image with a hole mask.
#[derive(Clone)]
struct Img {
    w: usize,
    h: usize,
    px: Vec<[f32; 3]>,
}

impl Img {
    fn from_rgba(img: &RgbaImage) -> Self {
        Img {
            w: img.width() as usize,
            h: img.height() as usize,
            px: img
                .pixels()
                .map(|p| [p[0] as f32, p[1] as f32, p[2] as f32])
                .collect(),
        }
    }
}

fn hole_of(mask: &GrayImage) -> Vec<bool> {
    mask.pixels().map(|p| p[0] >= 128).collect()
}

/// Distance (in pixels, city-block approximated by two passes) from each hole pixel to the
/// nearest known pixel; 0 outside the hole.
fn hole_depth(hole: &[bool], w: usize, h: usize) -> Vec<u32> {
    let inf = u32::MAX / 2;
    let mut d: Vec<u32> = hole.iter().map(|&m| if m { inf } else { 0 }).collect();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if x > 0 {
                d[i] = d[i].min(d[i - 1] + 1);
            }
            if y > 0 {
                d[i] = d[i].min(d[i - w] + 1);
            }
        }
    }
    for y in (0..h).rev() {
        for x in (0..w).rev() {
            let i = y * w + x;
            if x + 1 < w {
                d[i] = d[i].min(d[i + 1] + 1);
            }
            if y + 1 < h {
                d[i] = d[i].min(d[i + w] + 1);
            }
        }
    }
    d
}

/// Fills the masked pixels (mask >= 128) of `image`; everything else is returned unchanged.
pub fn fill(image: &RgbaImage, mask: &GrayImage, method: Method) -> RgbaImage {
    assert_eq!(
        image.dimensions(),
        mask.dimensions(),
        "mask must match the image"
    );
    let hole = hole_of(mask);
    if !hole.iter().any(|&h| h) {
        return image.clone();
    }
    let (w, h) = (image.width() as usize, image.height() as usize);
    let method = match method {
        Method::Auto => {
            let deepest = hole_depth(&hole, w, h).into_iter().max().unwrap_or(0);
            if deepest <= 3 {
                Method::Telea
            } else {
                Method::PatchMatch
            }
        }
        m => m,
    };
    if hole.iter().all(|&h| h) {
        // Nothing to copy from: a neutral gray.
        let mut out = image.clone();
        for p in out.pixels_mut() {
            p[0] = 128;
            p[1] = 128;
            p[2] = 128;
        }
        return out;
    }
    let src = Img::from_rgba(image);
    let filled = match method {
        Method::Telea => telea(&src, &hole, 5),
        _ => patchmatch(&src, &hole),
    };
    let mut out = image.clone();
    for (i, p) in out.pixels_mut().enumerate() {
        if hole[i] {
            let c = filled.px[i];
            p[0] = c[0].round().clamp(0.0, 255.0) as u8;
            p[1] = c[1].round().clamp(0.0, 255.0) as u8;
            p[2] = c[2].round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// The mean colour of the known pixels in every hole pixel (a baseline for quality tests).
pub fn mean_fill(image: &RgbaImage, mask: &GrayImage) -> RgbaImage {
    let hole = hole_of(mask);
    let (mut sum, mut n) = ([0f64; 3], 0f64);
    for (p, &m) in image.pixels().zip(&hole) {
        if !m {
            for c in 0..3 {
                sum[c] += p[c] as f64;
            }
            n += 1.0;
        }
    }
    let mean = sum.map(|s| (s / n.max(1.0)).round() as u8);
    let mut out = image.clone();
    for (p, &m) in out.pixels_mut().zip(&hole) {
        if m {
            p[0] = mean[0];
            p[1] = mean[1];
            p[2] = mean[2];
        }
    }
    out
}

/// Telea's fast-marching fill with neighbourhood radius `radius`.
fn telea(src: &Img, hole: &[bool], radius: i32) -> Img {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let (w, h) = (src.w, src.h);
    let mut img = src.clone();
    // T: arrival time; state: 0 known, 1 band, 2 unknown.
    let mut t = vec![f32::INFINITY; w * h];
    let mut state = vec![0u8; w * h];
    let mut heap = BinaryHeap::new();
    let key = |v: f32| Reverse((v * 1024.0) as u64);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if hole[i] {
                state[i] = 2;
            } else {
                t[i] = 0.0;
            }
        }
    }
    // The band: known pixels next to the hole.
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if state[i] != 0 {
                continue;
            }
            let near = [(0i32, 1i32), (0, -1), (1, 0), (-1, 0)]
                .iter()
                .any(|(dx, dy)| {
                    let (nx, ny) = (x as i32 + dx, y as i32 + dy);
                    nx >= 0
                        && ny >= 0
                        && (nx as usize) < w
                        && (ny as usize) < h
                        && hole[ny as usize * w + nx as usize]
                });
            if near {
                state[i] = 1;
                heap.push((key(0.0), i));
            }
        }
    }
    let solve = |t: &[f32], state: &[u8], i1: Option<usize>, i2: Option<usize>| -> f32 {
        let v = |o: Option<usize>| {
            o.filter(|&j| state[j] == 0)
                .map(|j| t[j])
                .unwrap_or(f32::INFINITY)
        };
        let (a, b) = (v(i1), v(i2));
        if a.is_finite() && b.is_finite() {
            let r = 2.0 - (a - b) * (a - b);
            if r >= 0.0 {
                let s = (a + b + r.sqrt()) / 2.0;
                if s >= a.max(b) {
                    return s;
                }
            }
        }
        a.min(b) + 1.0
    };
    while let Some((_, i)) = heap.pop() {
        if state[i] == 0 && t[i] > 0.0 {
            continue;
        }
        state[i] = 0;
        let (x, y) = ((i % w) as i32, (i / w) as i32);
        for (dx, dy) in [(0i32, 1i32), (0, -1), (1, 0), (-1, 0)] {
            let (nx, ny) = (x + dx, y + dy);
            if nx < 0 || ny < 0 || nx as usize >= w || ny as usize >= h {
                continue;
            }
            let j = ny as usize * w + nx as usize;
            if state[j] != 2 {
                continue;
            }
            let at = |xx: i32, yy: i32| {
                (xx >= 0 && yy >= 0 && (xx as usize) < w && (yy as usize) < h)
                    .then(|| yy as usize * w + xx as usize)
            };
            let tj = solve(&t, &state, at(nx - 1, ny), at(nx, ny - 1))
                .min(solve(&t, &state, at(nx + 1, ny), at(nx, ny - 1)))
                .min(solve(&t, &state, at(nx - 1, ny), at(nx, ny + 1)))
                .min(solve(&t, &state, at(nx + 1, ny), at(nx, ny + 1)));
            t[j] = tj;
            // Fill pixel j from known neighbours within the radius.
            let grad_t = {
                let g = |a: Option<usize>, b: Option<usize>| match (a, b) {
                    (Some(a), Some(b)) if state[a] == 0 && state[b] == 0 => (t[b] - t[a]) / 2.0,
                    (Some(a), _) if state[a] == 0 => tj - t[a],
                    (_, Some(b)) if state[b] == 0 => t[b] - tj,
                    _ => 0.0,
                };
                (
                    g(at(nx - 1, ny), at(nx + 1, ny)),
                    g(at(nx, ny - 1), at(nx, ny + 1)),
                )
            };
            let mut acc = [0f32; 3];
            let mut wsum = 0f32;
            for ky in -radius..=radius {
                for kx in -radius..=radius {
                    let (qx, qy) = (nx + kx, ny + ky);
                    let Some(q) = at(qx, qy) else { continue };
                    if state[q] != 0 || (kx == 0 && ky == 0) {
                        continue;
                    }
                    let d2 = (kx * kx + ky * ky) as f32;
                    if d2 > (radius * radius) as f32 {
                        continue;
                    }
                    let (rx, ry) = (-kx as f32, -ky as f32);
                    let dir = ((rx * grad_t.0 + ry * grad_t.1).abs() / d2.sqrt()).max(1e-6);
                    let dst = 1.0 / d2;
                    let lev = 1.0 / (1.0 + (t[q] - tj).abs());
                    let wgt = dir * dst * lev;
                    for (a, v) in acc.iter_mut().zip(img.px[q]) {
                        *a += wgt * v;
                    }
                    wsum += wgt;
                }
            }
            if wsum > 0.0 {
                img.px[j] = acc.map(|a| a / wsum);
            }
            state[j] = 1;
            heap.push((key(tj), j));
        }
    }
    img
}

/// Half-size image and hole (a hole pixel where any of the four is a hole).
fn downsample(img: &Img, hole: &[bool]) -> (Img, Vec<bool>) {
    let (w, h) = (img.w.div_ceil(2), img.h.div_ceil(2));
    let mut px = vec![[0f32; 3]; w * h];
    let mut hl = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0f32; 3];
            let mut n = 0f32;
            let mut any_hole = false;
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (sx, sy) = (2 * x + dx, 2 * y + dy);
                if sx < img.w && sy < img.h {
                    let i = sy * img.w + sx;
                    if hole[i] {
                        any_hole = true;
                    } else {
                        for (a, v) in acc.iter_mut().zip(img.px[i]) {
                            *a += v;
                        }
                        n += 1.0;
                    }
                }
            }
            px[y * w + x] = if n > 0.0 {
                acc.map(|a| a / n)
            } else {
                [0.0; 3]
            };
            hl[y * w + x] = any_hole;
        }
    }
    (Img { w, h, px }, hl)
}

const R: i32 = 3; // patch radius: 7x7 patches

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// PatchMatch completion over a pyramid.
fn patchmatch(src: &Img, hole: &[bool]) -> Img {
    // Build the pyramid until the hole is small or the image is tiny.
    let mut levels = vec![(src.clone(), hole.to_vec())];
    loop {
        let (img, hl) = levels.last().expect("one level");
        let depth = hole_depth(hl, img.w, img.h).into_iter().max().unwrap_or(0);
        if img.w.min(img.h) < 4 * (2 * R as usize + 1) || depth <= 2 {
            break;
        }
        let next = downsample(img, hl);
        if next.1.iter().all(|&b| b) {
            break;
        }
        levels.push(next);
    }
    // Coarsest level: start from a Telea fill.
    let (coarse, chole) = levels.last().expect("levels");
    let mut estimate = telea(coarse, chole, 5);
    let mut nnf: Option<Field> = None;
    for li in (0..levels.len()).rev() {
        let (img, hl) = &levels[li];
        if li != levels.len() - 1 {
            // Upsample the previous estimate into this level's hole.
            let prev = estimate;
            let mut cur = img.clone();
            for y in 0..img.h {
                for x in 0..img.w {
                    let i = y * img.w + x;
                    if hl[i] {
                        let (px, py) = ((x / 2).min(prev.w - 1), (y / 2).min(prev.h - 1));
                        cur.px[i] = prev.px[py * prev.w + px];
                    }
                }
            }
            estimate = cur;
        }
        let iters = if li == 0 { 3 } else { 5 };
        let (est, field) = em_level(img, hl, estimate, iters, nnf.take(), li as u64);
        estimate = est;
        nnf = Some(field);
    }
    estimate
}

/// Valid source patch centres: patches entirely inside the image and outside the hole.
fn valid_sources(hole: &[bool], w: usize, h: usize) -> Vec<bool> {
    // A centre is valid if no hole pixel is within R in either axis (box test via a summed
    // area table).
    let mut sat = vec![0u32; (w + 1) * (h + 1)];
    for y in 0..h {
        for x in 0..w {
            sat[(y + 1) * (w + 1) + x + 1] =
                hole[y * w + x] as u32 + sat[y * (w + 1) + x + 1] + sat[(y + 1) * (w + 1) + x]
                    - sat[y * (w + 1) + x];
        }
    }
    let mut ok = vec![false; w * h];
    let r = R as usize;
    for y in r..h.saturating_sub(r) {
        for x in r..w.saturating_sub(r) {
            let (x0, y0, x1, y1) = (x - r, y - r, x + r + 1, y + r + 1);
            let s = sat[y1 * (w + 1) + x1] + sat[y0 * (w + 1) + x0]
                - sat[y0 * (w + 1) + x1]
                - sat[y1 * (w + 1) + x0];
            ok[y * w + x] = s == 0;
        }
    }
    ok
}

/// Sum of squared differences between the patch at `a` (in the current estimate) and the
/// source patch at `b`, stopping early past `best`.
fn ssd(est: &Img, a: (i32, i32), b: (i32, i32), best: f32) -> f32 {
    let (w, h) = (est.w as i32, est.h as i32);
    let mut d = 0f32;
    for dy in -R..=R {
        let (ay, by) = (a.1 + dy, b.1 + dy);
        if ay < 0 || ay >= h {
            continue;
        }
        for dx in -R..=R {
            let ax = a.0 + dx;
            if ax < 0 || ax >= w {
                continue;
            }
            let p = est.px[(ay * w + ax) as usize];
            let q = est.px[(by * w + b.0 + dx) as usize];
            d += (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2);
        }
        if d >= best {
            return d;
        }
    }
    d
}

type Field = (usize, usize, Vec<(i32, i32)>);

/// EM iterations at one level: nearest-neighbour field for patches touching the hole, then
/// voting. Rows are split over threads.
fn em_level(
    img: &Img,
    hole: &[bool],
    mut est: Img,
    iters: usize,
    prev: Option<Field>,
    seed: u64,
) -> (Img, Field) {
    let (w, h) = (img.w, img.h);
    let valid = valid_sources(hole, w, h);
    let sources: Vec<(i32, i32)> = (0..w * h)
        .filter(|&i| valid[i])
        .map(|i| ((i % w) as i32, (i / w) as i32))
        .collect();
    let mut nnf = vec![(0i32, 0i32); w * h];
    // Targets: pixels whose patch touches the hole.
    let depth = hole_depth(hole, w, h);
    let near_hole: Vec<bool> = {
        let inv: Vec<bool> = hole.iter().map(|&b| !b).collect();
        let dist_to_hole = hole_depth(&inv, w, h); // 0 in the hole
        (0..w * h)
            .map(|i| hole[i] || dist_to_hole[i] as i32 <= 2 * R)
            .collect()
    };
    let _ = depth;
    if sources.is_empty() {
        return (est, (w, h, nnf));
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    for i in 0..w * h {
        if !near_hole[i] {
            continue;
        }
        let (x, y) = ((i % w) as i32, (i / w) as i32);
        nnf[i] = match &prev {
            Some((pw, ph, pf)) => {
                let (px, py) = (
                    ((x / 2) as usize).min(pw - 1),
                    ((y / 2) as usize).min(ph - 1),
                );
                let (sx, sy) = pf[py * pw + px];
                let c = (sx * 2 + (x & 1), sy * 2 + (y & 1));
                if c.0 >= 0
                    && c.1 >= 0
                    && (c.0 as usize) < w
                    && (c.1 as usize) < h
                    && valid[c.1 as usize * w + c.0 as usize]
                {
                    c
                } else {
                    sources[rng.below(sources.len())]
                }
            }
            None => sources[rng.below(sources.len())],
        };
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    for it in 0..iters {
        // Nearest-neighbour search: a few sweeps of propagation + random search.
        for sweep in 0..2 {
            let forward = (it + sweep) % 2 == 0;
            let chunk = h.div_ceil(threads);
            let est_ref = &est;
            let valid_ref = &valid;
            let near_ref = &near_hole;
            let sources_ref = &sources;
            let old = nnf.clone();
            let results: Vec<Vec<(usize, (i32, i32))>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let old = &old;
                        s.spawn(move || {
                            let mut rng = Rng((seed + 1) * 0x9E37_79B9
                                + (t as u64 + 1) * 0x85EB_CA6B
                                + (it * 2 + sweep) as u64 * 0xC2B2_AE35);
                            let mut local = old.clone();
                            let mut changed = Vec::new();
                            let rows: Vec<usize> = if forward {
                                (t * chunk..((t + 1) * chunk).min(h)).collect()
                            } else {
                                (t * chunk..((t + 1) * chunk).min(h)).rev().collect()
                            };
                            for y in rows {
                                let xs: Vec<usize> = if forward {
                                    (0..w).collect()
                                } else {
                                    (0..w).rev().collect()
                                };
                                for x in xs {
                                    let i = y * w + x;
                                    if !near_ref[i] {
                                        continue;
                                    }
                                    let a = (x as i32, y as i32);
                                    let mut best = local[i];
                                    let mut bd = ssd(est_ref, a, best, f32::INFINITY);
                                    let step: i32 = if forward { -1 } else { 1 };
                                    let try_cand =
                                        |c: (i32, i32), best: &mut (i32, i32), bd: &mut f32| {
                                            if c.0 < 0
                                                || c.1 < 0
                                                || c.0 as usize >= w
                                                || c.1 as usize >= h
                                            {
                                                return;
                                            }
                                            if !valid_ref[c.1 as usize * w + c.0 as usize] {
                                                return;
                                            }
                                            let d = ssd(est_ref, a, c, *bd);
                                            if d < *bd {
                                                *bd = d;
                                                *best = c;
                                            }
                                        };
                                    // Propagation from the previous pixel in scan order.
                                    let nx = x as i32 + step;
                                    if nx >= 0 && (nx as usize) < w {
                                        let n = local[y * w + nx as usize];
                                        try_cand((n.0 - step, n.1), &mut best, &mut bd);
                                    }
                                    let ny = y as i32 + step;
                                    if ny >= 0 && (ny as usize) < h {
                                        let n = local[ny as usize * w + x];
                                        try_cand((n.0, n.1 - step), &mut best, &mut bd);
                                    }
                                    // Random search around the current best, shrinking.
                                    let mut rad = w.max(h) as i32;
                                    while rad >= 1 {
                                        let c = (
                                            best.0 + (rng.below(2 * rad as usize + 1) as i32 - rad),
                                            best.1 + (rng.below(2 * rad as usize + 1) as i32 - rad),
                                        );
                                        try_cand(c, &mut best, &mut bd);
                                        rad /= 2;
                                    }
                                    // And one random source anywhere.
                                    try_cand(
                                        sources_ref[rng.below(sources_ref.len())],
                                        &mut best,
                                        &mut bd,
                                    );
                                    if best != local[i] {
                                        local[i] = best;
                                        changed.push((i, best));
                                    }
                                }
                            }
                            changed
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("worker"))
                    .collect()
            });
            for part in results {
                for (i, c) in part {
                    nnf[i] = c;
                }
            }
        }
        // Voting: every hole pixel averages the pixels that the patches covering it map to.
        let mut acc = vec![[0f32; 4]; w * h];
        for i in 0..w * h {
            if !near_hole[i] {
                continue;
            }
            let (x, y) = ((i % w) as i32, (i / w) as i32);
            let (sx, sy) = nnf[i];
            let d = ssd(&est, (x, y), (sx, sy), f32::INFINITY) / ((2 * R + 1) * (2 * R + 1)) as f32;
            let wgt = (-d / (2.0 * 40.0f32 * 40.0)).exp().max(1e-6);
            for dy in -R..=R {
                for dx in -R..=R {
                    let (tx, ty) = (x + dx, y + dy);
                    if tx < 0 || ty < 0 || tx as usize >= w || ty as usize >= h {
                        continue;
                    }
                    let ti = ty as usize * w + tx as usize;
                    if !hole[ti] {
                        continue;
                    }
                    let q = est.px[((sy + dy) as usize) * w + (sx + dx) as usize];
                    let a = &mut acc[ti];
                    a[0] += wgt * q[0];
                    a[1] += wgt * q[1];
                    a[2] += wgt * q[2];
                    a[3] += wgt;
                }
            }
        }
        for i in 0..w * h {
            if hole[i] && acc[i][3] > 0.0 {
                let a = acc[i];
                est.px[i] = [a[0] / a[3], a[1] / a[3], a[2] / a[3]];
            }
        }
    }
    (est, (w, h, nnf))
}

/// PSNR (dB) of `a` against `b` over the pixels where `mask` is set (RGB).
pub fn psnr_in_mask(a: &RgbaImage, b: &RgbaImage, mask: &GrayImage) -> f64 {
    let mut se = 0f64;
    let mut n = 0f64;
    for ((p, q), m) in a.pixels().zip(b.pixels()).zip(mask.pixels()) {
        if m[0] >= 128 {
            for c in 0..3 {
                se += (p[c] as f64 - q[c] as f64).powi(2);
            }
            n += 3.0;
        }
    }
    if se == 0.0 {
        return 99.0;
    }
    10.0 * (255.0f64 * 255.0 / (se / n)).log10()
}
