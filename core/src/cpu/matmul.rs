//! Where the matrix products of this module's kernels run: the `gemm` crate in f32, or
//! [`gemm_bf16`](super::gemm_bf16) (bf16 inputs, f32 sums) for bf16 models on CPUs whose bf16
//! dot products outrun their f32 FMAs.
//!
//! `half.rs` turns bf16 products on for the computation of one bf16 layer ([`with_bf16_products`]);
//! every kernel reads the setting once on the calling thread ([`bf16_on`]) and passes it to
//! [`gemm`] for each product, including those it runs inside rayon tasks. f32 models never
//! see it: their products are the `gemm` crate's, bit for bit as before.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

pub(super) use super::gemm_bf16::{Gemm, View};

/// `on` (bf16 dot products wherever the CPU has them, fast or not: for tests and
/// measurements), `off`, or `auto` (the default: where they are faster than f32 FMAs).
pub const BF16_KERNELS_ENV: &str = "CLEARPAINT_BF16_KERNELS";

thread_local! {
    static BF16: Cell<bool> = const { Cell::new(false) };
    static CHOICE: Cell<Option<bool>> = const { Cell::new(None) };
}

static BF16_GEMMS: AtomicU64 = AtomicU64::new(0);

/// Whether products on this thread take bf16 inputs.
pub(super) fn bf16_on() -> bool {
    BF16.with(Cell::get)
}

/// Runs `f` with bf16 products on this thread set to `on` (restored afterwards, also when `f`
/// panics).
pub(super) fn with_bf16_products<T>(on: bool, f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BF16.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(BF16.with(|c| c.replace(on)));
    f()
}

/// Whether bf16 layers run their products on the bf16 dot products: the CPU has them and
/// [`BF16_KERNELS_ENV`] asks for them, or leaves it to [`bf16_speed_vs_f32`] (above 1).
pub fn bf16_kernels_used() -> bool {
    if let Some(on) = CHOICE.with(Cell::get) {
        return on && bf16_kernels_available();
    }
    let env = std::env::var(BF16_KERNELS_ENV).unwrap_or_default();
    match env.trim().to_ascii_lowercase().as_str() {
        "on" => bf16_kernels_available(),
        "off" => false,
        _ => bf16_speed_vs_f32() > 1.0,
    }
}

/// Whether this CPU has the bf16 dot products (AVX-512F with AVX512_BF16).
pub fn bf16_kernels_available() -> bool {
    super::gemm_bf16::available()
}

/// Runs `f` with bf16 layers' products on the bf16 dot products (`true`, where the CPU has
/// them) or on the f32 kernels (`false`) for the computations of this thread, whatever the
/// measured speed and [`BF16_KERNELS_ENV`] say: for tests and measurements of both.
pub fn with_bf16_kernels<T>(on: bool, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CHOICE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CHOICE.with(|c| c.replace(Some(on))));
    f()
}

/// How many products have run on the bf16 dot products in this process (tests check the path
/// was taken).
pub fn bf16_gemms() -> u64 {
    BF16_GEMMS.load(Ordering::Relaxed)
}

/// Multiply-adds per second of this core's bf16 dot products over its f32 FMAs (measured once,
/// about a millisecond; 0 without the instructions).
pub fn bf16_speed_vs_f32() -> f64 {
    super::gemm_bf16::speed_vs_f32()
}

/// Runs `g`: on the bf16 dot products when `bf16`, else on the `gemm` crate in f32; on all
/// cores when `parallel`.
///
/// # Safety
/// As [`Gemm::run`]: the views are valid for `m x k`, `k x n` and `m x n` elements with their
/// strides and `dst` does not overlap the inputs; `bf16` only where [`bf16_kernels_used`].
pub(super) unsafe fn gemm(g: &Gemm, bf16: bool, parallel: bool) {
    if bf16 {
        BF16_GEMMS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract.
        unsafe { g.run(parallel) };
        return;
    }
    let par = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the caller's contract; `alpha` is read only with `read_dst`.
    unsafe {
        gemm::gemm(
            g.m,
            g.n,
            g.k,
            g.dst,
            g.dst_cs,
            g.dst_rs,
            g.accumulate,
            g.lhs.ptr,
            g.lhs.cs,
            g.lhs.rs,
            g.rhs.ptr,
            g.rhs.cs,
            g.rhs.rs,
            if g.accumulate { 1.0 } else { 0.0 },
            g.beta,
            false,
            false,
            false,
            par,
        );
    }
}
