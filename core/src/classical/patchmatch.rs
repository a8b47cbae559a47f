//! Exemplar-based completion (Wexler et al. 2007) with PatchMatch's randomized
//! nearest-neighbour search (Barnes et al. 2009), coarse-to-fine over an image pyramid.

use super::{Img, hole_depth, telea::telea};

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

/// PatchMatch completion over a pyramid: the fill, and per pixel the mean squared difference
/// (per channel, 0..255 scale) between the patch centred there and its source patch (0
/// outside the hole's neighbourhood).
pub(super) fn patchmatch(src: &Img, hole: &[bool]) -> (Img, Img, Vec<f32>) {
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
    let cost = match &nnf {
        Some((w, _, field)) => patch_costs(&estimate, hole, *w, field),
        None => vec![0.0; hole.len()],
    };
    let copied = match &nnf {
        Some((w, _, field)) => copy_centres(&estimate, hole, *w, field, &cost),
        None => estimate.clone(),
    };
    (copied, estimate, cost)
}

/// The final pass: every hole pixel takes the centre of its own patch's source, unaveraged
/// (voting over overlapping patches blurs the finest texture).
fn copy_centres(est: &Img, hole: &[bool], w: usize, field: &[(i32, i32)], cost: &[f32]) -> Img {
    let mut out = est.clone();
    for i in 0..hole.len() {
        if hole[i] && cost[i].is_finite() {
            let (sx, sy) = field[i];
            out.px[i] = est.px[sy as usize * w + sx as usize];
        }
    }
    out
}

/// Per hole pixel, the mean squared difference of its patch against its field's source.
fn patch_costs(est: &Img, hole: &[bool], w: usize, field: &[(i32, i32)]) -> Vec<f32> {
    let per = ((2 * R + 1) * (2 * R + 1) * 3) as f32;
    (0..hole.len())
        .map(|i| {
            if !hole[i] {
                return 0.0;
            }
            let (a, b) = (((i % w) as i32, (i / w) as i32), field[i]);
            let inside = |v: i32, n: usize| v >= R && v + R < n as i32;
            if !inside(b.0, est.w) || !inside(b.1, est.h) {
                return f32::INFINITY; // no source was found at this level
            }
            ssd(est, a, b, f32::INFINITY) / per
        })
        .collect()
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

/// What one pyramid level's EM iterations search over.
struct Level<'a> {
    w: usize,
    h: usize,
    hole: &'a [bool],
    /// Valid source patch centres (patches entirely outside the hole).
    valid: Vec<bool>,
    sources: Vec<(i32, i32)>,
    /// Targets: pixels whose patch touches the hole.
    near_hole: Vec<bool>,
}

impl<'a> Level<'a> {
    fn new(hole: &'a [bool], w: usize, h: usize) -> Self {
        let valid = valid_sources(hole, w, h);
        let sources: Vec<(i32, i32)> = (0..w * h)
            .filter(|&i| valid[i])
            .map(|i| ((i % w) as i32, (i / w) as i32))
            .collect();
        let inv: Vec<bool> = hole.iter().map(|&b| !b).collect();
        let dist_to_hole = hole_depth(&inv, w, h); // 0 in the hole
        let near_hole = (0..w * h)
            .map(|i| hole[i] || dist_to_hole[i] as i32 <= 2 * R)
            .collect();
        Level {
            w,
            h,
            hole,
            valid,
            sources,
            near_hole,
        }
    }

    /// Whether `c` is inside the image and a valid source centre.
    fn is_source(&self, c: (i32, i32)) -> bool {
        c.0 >= 0
            && c.1 >= 0
            && (c.0 as usize) < self.w
            && (c.1 as usize) < self.h
            && self.valid[c.1 as usize * self.w + c.0 as usize]
    }

    /// The starting field: the coarser level's field upsampled where it lands on a valid
    /// source, random sources elsewhere.
    fn initial_field(&self, prev: Option<&Field>, rng: &mut Rng) -> Vec<(i32, i32)> {
        let (w, h) = (self.w, self.h);
        let mut nnf = vec![(0i32, 0i32); w * h];
        for (i, slot) in nnf.iter_mut().enumerate() {
            if !self.near_hole[i] {
                continue;
            }
            let (x, y) = ((i % w) as i32, (i / w) as i32);
            *slot = match prev {
                Some((pw, ph, pf)) => {
                    let (px, py) = (
                        ((x / 2) as usize).min(pw - 1),
                        ((y / 2) as usize).min(ph - 1),
                    );
                    let (sx, sy) = pf[py * pw + px];
                    let c = (sx * 2 + (x & 1), sy * 2 + (y & 1));
                    if self.is_source(c) {
                        c
                    } else {
                        self.sources[rng.below(self.sources.len())]
                    }
                }
                None => self.sources[rng.below(self.sources.len())],
            };
        }
        nnf
    }
}

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
    let level = Level::new(hole, w, h);
    if level.sources.is_empty() {
        return (est, (w, h, vec![(0i32, 0i32); w * h]));
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let mut nnf = level.initial_field(prev.as_ref(), &mut rng);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    for it in 0..iters {
        // Nearest-neighbour search: a few sweeps of propagation + random search.
        for sweep in 0..2 {
            search_sweep(&level, &est, &mut nnf, (it, sweep), seed, threads);
        }
        vote(&level, &mut est, &nnf);
    }
    (est, (w, h, nnf))
}

/// One propagation + random-search sweep over the field, rows split over `threads` (each
/// thread sees the field as it was before the sweep, plus its own updates).
fn search_sweep(
    level: &Level,
    est: &Img,
    nnf: &mut [(i32, i32)],
    (it, sweep): (usize, usize),
    seed: u64,
    threads: usize,
) {
    let forward = (it + sweep) % 2 == 0;
    let chunk = level.h.div_ceil(threads);
    let old = nnf.to_vec();
    let results: Vec<Vec<(usize, (i32, i32))>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let old = &old;
                s.spawn(move || {
                    let rng = Rng((seed + 1) * 0x9E37_79B9
                        + (t as u64 + 1) * 0x85EB_CA6B
                        + (it * 2 + sweep) as u64 * 0xC2B2_AE35);
                    let rows = t * chunk..((t + 1) * chunk).min(level.h);
                    search_rows(level, est, old.clone(), rows, forward, rng)
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

/// Improves the field on `rows` (in scan order, or reversed) and returns what changed.
fn search_rows(
    level: &Level,
    est: &Img,
    mut local: Vec<(i32, i32)>,
    rows: std::ops::Range<usize>,
    forward: bool,
    mut rng: Rng,
) -> Vec<(usize, (i32, i32))> {
    let (w, h) = (level.w, level.h);
    let mut changed = Vec::new();
    let rows: Vec<usize> = if forward {
        rows.collect()
    } else {
        rows.rev().collect()
    };
    for y in rows {
        let xs: Vec<usize> = if forward {
            (0..w).collect()
        } else {
            (0..w).rev().collect()
        };
        for x in xs {
            let i = y * w + x;
            if !level.near_hole[i] {
                continue;
            }
            let a = (x as i32, y as i32);
            let mut best = local[i];
            let mut bd = ssd(est, a, best, f32::INFINITY);
            let step: i32 = if forward { -1 } else { 1 };
            let try_cand = |c: (i32, i32), best: &mut (i32, i32), bd: &mut f32| {
                if !level.is_source(c) {
                    return;
                }
                let d = ssd(est, a, c, *bd);
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
                level.sources[rng.below(level.sources.len())],
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
}

/// Voting: every hole pixel averages the pixels that the patches covering it map to.
fn vote(level: &Level, est: &mut Img, nnf: &[(i32, i32)]) {
    let (w, h) = (level.w, level.h);
    let mut acc = vec![[0f32; 4]; w * h];
    for (i, &(sx, sy)) in nnf.iter().enumerate() {
        if !level.near_hole[i] {
            continue;
        }
        let (x, y) = ((i % w) as i32, (i / w) as i32);
        let d = ssd(est, (x, y), (sx, sy), f32::INFINITY) / ((2 * R + 1) * (2 * R + 1)) as f32;
        let wgt = (-d / (2.0 * 40.0f32 * 40.0)).exp().max(1e-6);
        for dy in -R..=R {
            for dx in -R..=R {
                let (tx, ty) = (x + dx, y + dy);
                if tx < 0 || ty < 0 || tx as usize >= w || ty as usize >= h {
                    continue;
                }
                let ti = ty as usize * w + tx as usize;
                if !level.hole[ti] {
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
    for (i, a) in acc.iter().enumerate() {
        if level.hole[i] && a[3] > 0.0 {
            est.px[i] = [a[0] / a[3], a[1] / a[3], a[2] / a[3]];
        }
    }
}
