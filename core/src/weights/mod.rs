//! Safetensors weights: open (mmap), validate, convert f16/bf16 to f32, remap keys, load into
//! burn modules with a report; and diffusers-style model folders.

mod file;
mod folder;
mod load;

use std::path::PathBuf;

pub use file::{FloatType, HostFloats, SafetensorsFile, TensorEntry, float_type};
pub use folder::{ComponentFiles, component_files, read_config};
pub use load::{
    KeyRemap, LoadOptions, LoadReport, ModulePath, ShapeMismatch, key_summary, load_module,
};

/// Everything that can go wrong with weights. Each message is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {problem}", path.display())]
    BadFile { path: PathBuf, problem: String },
    #[error("{path}: weights do not fit the model: {report}")]
    Mismatch {
        path: String,
        report: Box<LoadReport>,
    },
    #[error("{}: {problem}", path.display())]
    BadFolder { path: PathBuf, problem: String },
    #[error("{}: invalid config: {problem}", path.display())]
    BadConfig { path: PathBuf, problem: String },
}

impl WeightsError {
    /// The problem without the file name.
    pub fn problem(&self) -> String {
        match self {
            WeightsError::Io { source, .. } => source.to_string(),
            WeightsError::BadFile { problem, .. }
            | WeightsError::BadFolder { problem, .. }
            | WeightsError::BadConfig { problem, .. } => problem.clone(),
            WeightsError::Mismatch { report, .. } => report.to_string(),
        }
    }
}
