//! Where and in what precision models run: `--device` / `CLEARPAINT_DEVICE` is passed down
//! explicitly; `--precision` / `CLEARPAINT_PRECISION` is set once at start-up here and applied
//! to every device a command or the app selects.

use std::sync::OnceLock;

use anyhow::Result;
use clearpaint_core::device::{self, DeviceChoice, Selected};
use clearpaint_core::precision::Precision;

static PRECISION: OnceLock<Precision> = OnceLock::new();

/// The precision chosen on the command line (once, at start-up; later calls are ignored).
pub fn set_precision(p: Precision) {
    let _ = PRECISION.set(p);
}

/// The precision chosen at start-up (`auto` if none was).
pub fn precision() -> Precision {
    PRECISION.get().copied().unwrap_or_default()
}

/// The device for `choice`, at the chosen precision.
pub fn select(choice: DeviceChoice) -> Result<Selected> {
    Ok(device::select(choice)?.with_precision(precision())?)
}
