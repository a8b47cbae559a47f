//! A GEMM on the CPU's bf16 dot products (AVX512_BF16's `vdpbf16ps`): `C = beta A B (+ C)`
//! with f32 `A`, `B` and `C` read and written through strides as the `gemm` crate's, `A` and
//! `B` rounded to bf16 (nearest even) as they are packed, every product and sum in f32. This
//! is what PyTorch's bf16 autocast and oneDNN compute: bf16 inputs, f32 accumulation.
//!
//! Blocking as BLIS: the columns of `C` are cut into blocks of up to `NC`, one task each; a
//! task walks the depth in blocks of `KC`, packs its block of `B` once into column panels of
//! `NR` (bf16 pairs along the depth, the layout `vdpbf16ps` reads: lane `j` of a 32-bit pair
//! holds `B[2p][j], B[2p+1][j]`), then for each `MC` rows of `A` packs them into row panels of
//! `MR` (`A[r][2p], A[r][2p+1]` is broadcast) and runs the `MR x NR` microkernel over the
//! panels with its 24 accumulators in registers. `A` is packed once per task (a `1/NC`
//! overhead on the products), `B` once; a row-major `B` (the activations) is rounded and
//! interleaved 16 lanes at a time (`vcvtne2ps2bf16`, `vpermw`).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

/// Rows of `C` per microkernel call (broadcasts of `A`).
const MR: usize = 12;
/// Columns per microkernel call: two 16-lane registers.
const NR: usize = 32;
/// Depth per packed block (even: bf16 pairs).
const KC: usize = 512;
/// Rows per task (a multiple of `MR`).
const MC: usize = 96;
/// Columns per task (a multiple of `NR`).
const NC: usize = 512;

/// A matrix read through element strides.
#[derive(Clone, Copy)]
pub(super) struct View {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

/// `C (m x n) = beta A (m x k) B (k x n)`, plus `C`'s old values when `accumulate`.
#[derive(Clone, Copy)]
pub(super) struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub dst: *mut f32,
    pub dst_rs: isize,
    pub dst_cs: isize,
    pub accumulate: bool,
    pub beta: f32,
    pub lhs: View,
    pub rhs: View,
}

// SAFETY: a `Gemm` is run by tasks that each write a disjoint tile of `dst` and only read
// `lhs` and `rhs` (see `run`).
unsafe impl Send for Gemm {}
unsafe impl Sync for Gemm {}

/// Whether this CPU has the instructions (AVX-512F, BW and BF16).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// How many times more multiply-adds per second this core does with `vdpbf16ps` than with f32
/// FMAs (0 without the instructions), measured once per process (about a millisecond). The
/// instruction's speed differs between CPUs far more than its presence says: Zen 4 runs it at
/// twice its f32 rate, some Xeons at a fraction of it (measured here: BENCHMARKS.md).
pub(super) fn speed_vs_f32() -> f64 {
    static RATIO: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *RATIO.get_or_init(|| {
        if !available() {
            return 0.0;
        }
        // SAFETY: available() checked.
        let (dp, fma) = unsafe { (best_of(|| time_dp()), best_of(|| time_fma())) };
        // Each run does the same number of instructions: 32 products each for vdpbf16ps, 16
        // for an FMA.
        2.0 * fma / dp
    })
}

fn best_of(mut f: impl FnMut() -> f64) -> f64 {
    (0..5).map(|_| f()).fold(f64::INFINITY, f64::min)
}

const CHAINS: usize = 16;
const ROUNDS: usize = 2000;

/// `$name()`: seconds for `ROUNDS` x `CHAINS` independent `$step(acc, x)` on one core.
macro_rules! timed_chains {
    ($name:ident, $features:literal, $x:expr, $step:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name() -> f64 {
            let x = $x;
            let mut c = [_mm512_setzero_ps(); CHAINS];
            let start = std::time::Instant::now();
            for _ in 0..ROUNDS {
                for v in c.iter_mut() {
                    *v = $step(*v, x);
                }
            }
            std::hint::black_box(c);
            start.elapsed().as_secs_f64()
        }
    };
}

timed_chains!(
    time_dp,
    "avx512f,avx512bf16",
    // SAFETY: 16 u32 reinterpreted as 32 bf16.
    unsafe {
        std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(std::hint::black_box(
            0x3f80_3f80,
        )))
    },
    |acc, x| _mm512_dpbf16_ps(acc, x, x)
);
timed_chains!(
    time_fma,
    "avx512f",
    _mm512_set1_ps(std::hint::black_box(1.0)),
    |acc, x| _mm512_fmadd_ps(x, x, acc)
);

#[cfg(not(target_arch = "x86_64"))]
unsafe fn time_dp() -> f64 {
    f64::INFINITY
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn time_fma() -> f64 {
    1.0
}

/// f32 -> bf16, rounded to nearest even (NaN stays NaN), as PyTorch's and `vcvtneps2bf16`.
pub(super) fn round_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

impl Gemm {
    /// Runs the product, on all cores when `parallel`.
    ///
    /// # Safety
    /// The views are valid for `m x k`, `k x n` and `m x n` elements with their strides, `dst`
    /// does not overlap the inputs, and [`available`] is true.
    pub(super) unsafe fn run(&self, parallel: bool) {
        if self.m == 0 || self.n == 0 {
            return;
        }
        let threads = if parallel {
            rayon::current_num_threads()
        } else {
            1
        };
        // Columns per task: NC, or fewer so that every thread has a share.
        let nc = NC.min(self.n.div_ceil(threads).next_multiple_of(NR));
        let tasks = self.n.div_ceil(nc);
        let task = |t: usize| {
            let (mut pa, mut pb) = (Vec::new(), Vec::new());
            let j0 = t * nc;
            // SAFETY: the caller's contract; task t writes only columns j0..j0 + nc.
            unsafe { self.columns(j0, nc.min(self.n - j0), &mut pa, &mut pb) };
        };
        if parallel && tasks > 1 {
            (0..tasks).into_par_iter().for_each(task);
        } else {
            (0..tasks).for_each(task);
        }
    }

    /// Columns `j0..j0 + nc` of `C`, every row: each depth block of `B` is packed once and
    /// used for all of `A`'s row blocks.
    unsafe fn columns(&self, j0: usize, nc: usize, pa: &mut Vec<u32>, pb: &mut Vec<u32>) {
        let mut p0 = 0;
        loop {
            let kc = KC.min(self.k - p0);
            // SAFETY: columns j0..j0+nc and depth p0..p0+kc are in bounds.
            unsafe { pack(transposed(self.rhs), [j0, p0], [nc, kc], NR, pb) };
            for i0 in (0..self.m).step_by(MC) {
                let mc = MC.min(self.m - i0);
                // SAFETY: rows i0..i0+mc and depth p0..p0+kc are in bounds.
                unsafe { pack(self.lhs, [i0, p0], [mc, kc], MR, pa) };
                // SAFETY: as above; the block's rows and columns are inside C.
                unsafe { self.block([i0, j0], [mc, nc, kc], p0 > 0, pa, pb) };
            }
            p0 += kc;
            if p0 >= self.k {
                break;
            }
        }
    }

    /// The `mc x nc` block of `C` at `(i0, j0)` from packed panels of depth `kc`, added to `C`
    /// when `later` (not the first depth block) or `accumulate`.
    unsafe fn block(
        &self,
        [i0, j0]: [usize; 2],
        [mc, nc, kc]: [usize; 3],
        later: bool,
        pa: &[u32],
        pb: &[u32],
    ) {
        let pairs = kc.div_ceil(2);
        let add = self.accumulate || later;
        let mut acc = [0f32; MR * NR];
        for jr in (0..nc).step_by(NR) {
            let b = &pb[jr / NR * pairs * NR..][..pairs * NR];
            for ir in (0..mc).step_by(MR) {
                let a = &pa[ir / MR * pairs * MR..][..pairs * MR];
                // SAFETY: available() (the caller's contract); the panels are full size.
                unsafe { kernel(pairs, a, b, &mut acc) };
                let (rows, cols) = (MR.min(mc - ir), NR.min(nc - jr));
                // SAFETY: (i0+ir+r, j0+jr+c) is inside C for r < rows, c < cols.
                unsafe { self.write([i0 + ir, j0 + jr], [rows, cols], add, &acc) };
            }
        }
    }

    /// Adds (or writes) `beta acc` into the `rows x cols` corner of `C` at `(i, j)`.
    unsafe fn write(
        &self,
        [i, j]: [usize; 2],
        [rows, cols]: [usize; 2],
        add: bool,
        acc: &[f32; MR * NR],
    ) {
        if self.dst_cs == 1 {
            for r in 0..rows {
                // SAFETY: the caller's contract: row i + r, columns j..j + cols of C are
                // adjacent in memory; available() holds.
                unsafe {
                    let row = self.dst.offset((i + r) as isize * self.dst_rs + j as isize);
                    add_row(row, &acc[r * NR..r * NR + NR], cols, self.beta, add);
                }
            }
            return;
        }
        for r in 0..rows {
            // SAFETY: the caller's contract.
            let row = unsafe { self.dst.offset((i + r) as isize * self.dst_rs) };
            for (c, &v) in acc[r * NR..r * NR + cols].iter().enumerate() {
                // SAFETY: as above.
                unsafe {
                    let d = row.offset((j + c) as isize * self.dst_cs);
                    *d = if add {
                        *d + self.beta * v
                    } else {
                        self.beta * v
                    };
                }
            }
        }
    }
}

/// `dst[..cols] = beta acc[..cols] (+ dst[..cols])` for a row of `C` whose columns are adjacent,
/// 16 lanes at a time (masked past `cols`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_row(dst: *mut f32, acc: &[f32], cols: usize, beta: f32, add: bool) {
    let b = _mm512_set1_ps(beta);
    for c in (0..cols).step_by(16) {
        let mask: __mmask16 = ((1u32 << (cols - c).min(16)) - 1) as u16;
        // SAFETY: lanes below `cols` of dst are in bounds (the caller's contract), acc has NR.
        unsafe {
            let v = _mm512_mul_ps(b, _mm512_loadu_ps(acc.as_ptr().add(c)));
            let v = if add {
                _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst.add(c)), v)
            } else {
                v
            };
            _mm512_mask_storeu_ps(dst.add(c), mask, v);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn add_row(_: *mut f32, _: &[f32], _: usize, _: f32, _: bool) {
    unreachable!("available() is false off x86_64")
}

/// `v` with rows and columns swapped.
fn transposed(v: View) -> View {
    View {
        ptr: v.ptr,
        rs: v.cs,
        cs: v.rs,
    }
}

/// Packs rows `r0..r0+rows`, depth `p0..p0+depth` of `v` (rows x depth) into panels of
/// `width` rows: panel-major, then depth pairs, then the panel's rows, each u32 the bf16 pair
/// `(v[r][2p], v[r][2p+1])` (low half first); rows and depth past the edge are zero.
///
/// # Safety
/// `v` is valid for the rows and depth named.
unsafe fn pack(
    v: View,
    [r0, p0]: [usize; 2],
    [rows, depth]: [usize; 2],
    width: usize,
    out: &mut Vec<u32>,
) {
    let panels = rows.div_ceil(width);
    let pairs = depth.div_ceil(2);
    out.clear();
    out.resize(panels * pairs * width, 0);
    for (pi, panel) in out.chunks_exact_mut(pairs * width).enumerate() {
        let in_panel = width.min(rows - pi * width);
        // SAFETY: the caller's contract (row r0 + pi * width, depth p0 are in bounds).
        let first = unsafe {
            v.ptr
                .offset((r0 + pi * width) as isize * v.rs + p0 as isize * v.cs)
        };
        if v.rs == 1 {
            // SAFETY: available() (every caller runs on it); the panel's rows are adjacent in
            // memory and it holds pairs x width.
            unsafe { pack_unit_rows(first, v.cs, [in_panel, depth], width, panel) };
            continue;
        }
        if v.cs == 1 && depth >= 32 {
            // SAFETY: as above, for rows contiguous along the depth.
            unsafe { pack_unit_depth(first, v.rs, [in_panel, depth], width, panel) };
            continue;
        }
        for r in 0..in_panel {
            let row = r0 + pi * width + r;
            // SAFETY: row < r0 + rows and every depth index below is < p0 + depth.
            let at =
                |p: usize| unsafe { *v.ptr.offset(row as isize * v.rs + (p0 + p) as isize * v.cs) };
            for p in 0..pairs {
                let lo = round_bf16(at(2 * p)) as u32;
                let hi = if 2 * p + 1 < depth {
                    round_bf16(at(2 * p + 1)) as u32
                } else {
                    0
                };
                panel[p * width + r] = lo | hi << 16;
            }
        }
    }
}

/// One panel of [`pack`] whose rows are adjacent in memory (a row-major `B` read down its
/// columns, or a column-major `A` such as the UNet's `[B, HW, C]` views of NCHW maps): per
/// depth pair and 16 rows, two vectors rounded together (`vcvtne2ps2bf16`, nearest even) and
/// interleaved into pairs (`vpermw`); masked loads and stores for the rows past `rows` or
/// `width`. Depth past `depth` is zero.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_unit_rows(
    first: *const f32,
    depth_stride: isize,
    [rows, depth]: [usize; 2],
    width: usize,
    panel: &mut [u32],
) {
    // Lane 2j takes element j of the low row, lane 2j + 1 element j of the high row.
    let idx: [u16; 32] = std::array::from_fn(|l| (l / 2 + (l % 2) * 16) as u16);
    // SAFETY: idx is 32 u16.
    let idx = unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) };
    for p in 0..depth.div_ceil(2) {
        for j in (0..width.min(rows)).step_by(16) {
            let mask: __mmask16 = ((1u32 << (rows.min(width) - j).min(16)) - 1) as u16;
            // SAFETY: rows j.. (masked to those below `rows`) at depth 2p and 2p + 1 (when
            // inside depth) are in bounds (the caller's contract); the masked store stays
            // within the panel's pairs x width.
            unsafe {
                let lo_ptr = first.offset((2 * p) as isize * depth_stride + j as isize);
                let lo = _mm512_maskz_loadu_ps(mask, lo_ptr);
                let hi = if 2 * p + 1 < depth {
                    _mm512_maskz_loadu_ps(mask, lo_ptr.offset(depth_stride))
                } else {
                    _mm512_setzero_ps()
                };
                let both: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                let pairs = _mm512_permutexvar_epi16(idx, both);
                _mm512_mask_storeu_epi32(panel.as_mut_ptr().add(p * width + j).cast(), mask, pairs);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn pack_unit_rows(_: *const f32, _: isize, _: [usize; 2], _: usize, _: &mut [u32]) {
    unreachable!("available() is false off x86_64")
}

/// One panel of [`pack`] whose rows are contiguous along the depth (a row-major `A`, the
/// weights of a convolution or the activations of a linear layer): 32 values of a row rounded
/// at a time (`vcvtne2ps2bf16`: in memory order they are already the 16 pairs) and scattered
/// to their places `width` apart; the depth past the last multiple of 32 one value at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_unit_depth(
    first: *const f32,
    row_stride: isize,
    [rows, depth]: [usize; 2],
    width: usize,
    panel: &mut [u32],
) {
    let at: [i32; 16] = std::array::from_fn(|q| (q * width) as i32);
    // SAFETY: `at` is 16 i32.
    let at = unsafe { _mm512_loadu_si512(at.as_ptr().cast()) };
    let blocks = depth / 32;
    for r in 0..rows {
        // SAFETY: row r of the panel and depth 0..depth are in bounds (the caller's contract).
        let row = unsafe { first.offset(r as isize * row_stride) };
        for blk in 0..blocks {
            // SAFETY: 32 values from depth 32 blk are in bounds; pair 16 blk + q of row r is at
            // (16 blk + q) width + r < panel.len().
            unsafe {
                let lo = _mm512_loadu_ps(row.add(32 * blk));
                let hi = _mm512_loadu_ps(row.add(32 * blk + 16));
                let pairs: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                let base = panel.as_mut_ptr().add(16 * blk * width + r);
                _mm512_i32scatter_epi32::<4>(base.cast(), at, pairs);
            }
        }
        for p in 16 * blocks..depth.div_ceil(2) {
            // SAFETY: depth indices below `depth` only.
            let (lo, hi) = unsafe {
                let lo = round_bf16(*row.add(2 * p)) as u32;
                let hi = if 2 * p + 1 < depth {
                    round_bf16(*row.add(2 * p + 1)) as u32
                } else {
                    0
                };
                (lo, hi)
            };
            panel[p * width + r] = lo | hi << 16;
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn pack_unit_depth(_: *const f32, _: isize, _: [usize; 2], _: usize, _: &mut [u32]) {
    unreachable!("available() is false off x86_64")
}

/// `acc (MR x NR) = A_panel B_panel` over `pairs` depth pairs: per pair two loads of `B`, one
/// broadcast of `A` per row and 24 `vdpbf16ps` into accumulators that stay in registers (raw
/// pointers and no bounds checks in the loop, so nothing spills).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel(pairs: usize, a: &[u32], b: &[u32], acc: &mut [f32; MR * NR]) {
    assert!(a.len() >= pairs * MR && b.len() >= pairs * NR);
    let (mut ap, mut bp) = (a.as_ptr(), b.as_ptr());
    let mut c = [_mm512_setzero_ps(); 2 * MR];
    for _ in 0..pairs {
        // SAFETY: pairs * MR values of a and pairs * NR of b (asserted); the transmutes
        // reinterpret 16 f32 lanes as 32 bf16.
        unsafe {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_ps(bp.cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_ps(bp.add(16).cast()));
            for r in 0..MR {
                let ar: __m512bh = std::mem::transmute(_mm512_set1_ps(*ap.add(r).cast::<f32>()));
                c[2 * r] = _mm512_dpbf16_ps(c[2 * r], ar, b0);
                c[2 * r + 1] = _mm512_dpbf16_ps(c[2 * r + 1], ar, b1);
            }
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
    }
    for (r, pair) in c.chunks_exact(2).enumerate() {
        // SAFETY: acc has MR * NR elements.
        unsafe {
            _mm512_storeu_ps(acc.as_mut_ptr().add(r * NR), pair[0]);
            _mm512_storeu_ps(acc.as_mut_ptr().add(r * NR + 16), pair[1]);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel(_: usize, _: &[u32], _: &[u32], _: &mut [f32; MR * NR]) {
    unreachable!("available() is false off x86_64")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn bf(x: f32) -> f64 {
        f32::from_bits((round_bf16(x) as u32) << 16) as f64
    }

    /// `C = beta A B (+ C0)` in f64 on the bf16-rounded inputs, through the same strides.
    fn reference(g: &Gemm, a: &[f32], b: &[f32], c0: &[f32], c_len: usize) -> Vec<f32> {
        let mut c = c0[..c_len].to_vec();
        for i in 0..g.m {
            for j in 0..g.n {
                let mut s = 0f64;
                for p in 0..g.k {
                    let ai = i as isize * g.lhs.rs + p as isize * g.lhs.cs;
                    let bi = p as isize * g.rhs.rs + j as isize * g.rhs.cs;
                    s += bf(a[ai as usize]) * bf(b[bi as usize]);
                }
                let ci = (i as isize * g.dst_rs + j as isize * g.dst_cs) as usize;
                let old = if g.accumulate { c[ci] as f64 } else { 0.0 };
                c[ci] = (old + g.beta as f64 * s) as f32;
            }
        }
        c
    }

    fn check(
        [m, n, k]: [usize; 3],
        [transpose_a, transpose_b]: [bool; 2],
        accumulate: bool,
        parallel: bool,
    ) {
        if !available() {
            eprintln!("no AVX512_BF16 here: the bf16 GEMM is not run");
            return;
        }
        let a = values(m * k, 1 + m as u32);
        let b = values(k * n, 7 + n as u32);
        let c0 = values(m * n, 3);
        let mut c = c0.clone();
        let (ars, acs) = if transpose_a {
            (1, m as isize)
        } else {
            (k as isize, 1)
        };
        let (brs, bcs) = if transpose_b {
            (1, k as isize)
        } else {
            (n as isize, 1)
        };
        let g = Gemm {
            m,
            n,
            k,
            dst: c.as_mut_ptr(),
            dst_rs: n as isize,
            dst_cs: 1,
            accumulate,
            beta: 0.5,
            lhs: View {
                ptr: a.as_ptr(),
                rs: ars,
                cs: acs,
            },
            rhs: View {
                ptr: b.as_ptr(),
                rs: brs,
                cs: bcs,
            },
        };
        let want = reference(&g, &a, &b, &c0, m * n);
        // SAFETY: the views match the buffers' sizes.
        unsafe { g.run(parallel) };
        let worst = c
            .iter()
            .zip(&want)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0f32, f32::max);
        assert!(worst < 2e-5, "{m}x{n}x{k}: worst error {worst:e}");
    }

    #[test]
    fn matches_the_product_of_the_rounded_inputs() {
        // Full and partial panels, odd depths, several depth blocks, both layouts of each side.
        check([12, 32, 16], [false, false], false, false);
        check([13, 33, 7], [false, false], true, false);
        check([100, 600, 1030], [false, false], false, true);
        check([5, 3, 1], [true, true], true, true);
        check([97, 70, 513], [true, false], false, true);
        check([30, 64, 9], [false, true], true, true);
        check([40, 70, 100], [false, true], false, true);
    }

    #[test]
    fn rounds_to_nearest_even() {
        assert_eq!(round_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even (1.0).
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert!(f32::from_bits((round_bf16(f32::NAN) as u32) << 16).is_nan());
        assert_eq!(round_bf16(f32::INFINITY), 0x7f80);
    }
}
