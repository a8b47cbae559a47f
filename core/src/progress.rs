//! Progress reporting and cancellation for long operations.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A cheap, clonable flag: set it from anywhere (a UI button, Ctrl-C) and the running job
/// stops at its next step.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Receives progress of a job: `stage` names what runs ("encode", "denoise", "decode"),
/// `done` of `total` units are finished.
pub trait Progress: Sync {
    fn update(&self, stage: &str, done: usize, total: usize);
}

/// Ignores progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _: &str, _: usize, _: usize) {}
}

impl<F: Fn(&str, usize, usize) + Sync> Progress for F {
    fn update(&self, stage: &str, done: usize, total: usize) {
        self(stage, done, total)
    }
}
