//! The `clearpaint` app crate: the desktop UI (the CLI lives in the binary).

pub mod gui;
pub mod hub;
pub mod placement;
