//! Telea's fast-marching fill (Telea 2004): pixels are filled from the boundary inwards, each
//! as a weighted average of already-known neighbours.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::Img;

/// Telea's fast-marching fill with neighbourhood radius `radius`.
pub(super) fn telea(src: &Img, hole: &[bool], radius: i32) -> Img {
    let (w, h) = (src.w, src.h);
    let mut img = src.clone();
    let (mut t, mut state, mut heap) = initial_band(hole, w, h);
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
            if let Some(c) = weighted_fill(&img, &t, &state, (nx, ny), tj, radius) {
                img.px[j] = c;
            }
            state[j] = 1;
            heap.push((key(tj), j));
        }
    }
    img
}

/// The heap key of an arrival time (earliest first).
fn key(v: f32) -> Reverse<u64> {
    Reverse((v * 1024.0) as u64)
}

/// Arrival times, states and the narrow band's heap.
type Band = (Vec<f32>, Vec<u8>, BinaryHeap<(Reverse<u64>, usize)>);

/// Arrival times T (0 known, infinite unknown), states (0 known, 1 band, 2 unknown) and the
/// band, the known pixels next to the hole, as the heap to march from.
fn initial_band(hole: &[bool], w: usize, h: usize) -> Band {
    let mut t = vec![f32::INFINITY; w * h];
    let mut state = vec![0u8; w * h];
    let mut heap = BinaryHeap::new();
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
    (t, state, heap)
}

/// Telea's weighted average (direction, distance and level-set weights) of the known pixels
/// within `radius` of `(nx, ny)`, whose arrival time is `tj`; `None` when none is known.
fn weighted_fill(
    img: &Img,
    t: &[f32],
    state: &[u8],
    (nx, ny): (i32, i32),
    tj: f32,
    radius: i32,
) -> Option<[f32; 3]> {
    let (w, h) = (img.w, img.h);
    let at = |xx: i32, yy: i32| {
        (xx >= 0 && yy >= 0 && (xx as usize) < w && (yy as usize) < h)
            .then(|| yy as usize * w + xx as usize)
    };
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
    (wsum > 0.0).then(|| acc.map(|a| a / wsum))
}
