//! The fuzz harnesses, shared with `core/tests/fuzz_regressions.rs` (which includes
//! `harness.rs` by path and replays every committed input through it).
pub mod harness;
