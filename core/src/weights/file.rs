//! A memory-mapped `.safetensors` file, validated once when opened.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata, SafeTensorError, SafeTensors};

use super::WeightsError;

/// Element types we can read into f32 parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatType {
    F32,
    F16,
    BF16,
    F64,
}

/// Where one tensor lives in the file.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Byte range within the mapped file (header included in the offset).
    range: (usize, usize),
}

/// An opened, validated safetensors file. Tensor data stays on disk (mapped) until read.
pub struct SafetensorsFile {
    path: PathBuf,
    map: Mmap,
    tensors: BTreeMap<String, TensorEntry>,
    metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// Explains a safetensors parse error in words a user can act on.
fn explain(err: SafeTensorError, file_len: usize) -> String {
    use SafeTensorError::*;
    match err {
        HeaderTooSmall => format!(
            "not a safetensors file: {file_len} bytes is too short for the 8-byte header length"
        ),
        HeaderTooLarge | InvalidHeaderLength => {
            "not a safetensors file (or truncated): the header length in the first 8 bytes \
             points past the end of the file"
                .to_string()
        }
        InvalidHeader(_) => "not a safetensors file: the header is not UTF-8 text".to_string(),
        InvalidHeaderDeserialization(e) | JsonError(e) => {
            format!("not a safetensors file: the header is not valid safetensors JSON ({e})")
        }
        InvalidOffset(name) => format!(
            "corrupt header: the byte offsets of tensor '{name}' overlap, leave gaps or run past \
             the data"
        ),
        MetadataIncompleteBuffer => format!(
            "truncated or padded file: the header describes a different amount of tensor data \
             than the {file_len} bytes on disk"
        ),
        TensorInvalidInfo | InvalidTensorView(..) => {
            "corrupt header: a tensor's shape and dtype do not match its byte range".to_string()
        }
        ValidationOverflow => "corrupt header: a tensor shape overflows".to_string(),
        other => format!("invalid safetensors file: {other}"),
    }
}

impl SafetensorsFile {
    /// Opens and validates `path`: header, offsets and total size are checked here, so reading
    /// a tensor later cannot run past the data.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let path = path.as_ref().to_path_buf();
        let bad = |problem: String| WeightsError::BadFile {
            path: path.clone(),
            problem,
        };
        let file = File::open(&path).map_err(|e| WeightsError::Io {
            path: path.clone(),
            source: e,
        })?;
        let len = file
            .metadata()
            .map_err(|e| WeightsError::Io {
                path: path.clone(),
                source: e,
            })?
            .len();
        if len == 0 {
            return Err(bad("the file is empty".into()));
        }
        // SAFETY: the map is read-only. A file truncated by another process while mapped would
        // fault on access; that is the accepted contract of memory-mapped weights (as in
        // safetensors and burn-store).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| WeightsError::Io {
            path: path.clone(),
            source: e,
        })?;
        let (header_len, meta): (usize, Metadata) =
            SafeTensors::read_metadata(&map).map_err(|e| bad(explain(e, map.len())))?;
        let data_start = 8 + header_len;
        let mut tensors = BTreeMap::new();
        for (name, info) in meta.tensors() {
            let (a, b) = info.data_offsets;
            tensors.insert(
                name,
                TensorEntry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    range: (data_start + a, data_start + b),
                },
            );
        }
        let metadata = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(SafetensorsFile {
            path,
            map,
            tensors,
            metadata,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn entry(&self, key: &str) -> Option<&TensorEntry> {
        self.tensors.get(key)
    }

    /// The `__metadata__` block of the header.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Reads a floating-point tensor as f32 (f16, bf16 and f64 are converted).
    pub fn read_f32(&self, key: &str) -> Result<Vec<f32>, WeightsError> {
        let entry = self.tensors.get(key).ok_or_else(|| WeightsError::BadFile {
            path: self.path.clone(),
            problem: format!("no tensor named '{key}'"),
        })?;
        let bytes = &self.map[entry.range.0..entry.range.1];
        let float = float_type(entry.dtype).ok_or_else(|| WeightsError::BadFile {
            path: self.path.clone(),
            problem: format!(
                "tensor '{key}' has dtype {:?}; only F32, F16, BF16 and F64 weights can be loaded",
                entry.dtype
            ),
        })?;
        let values = decode_floats(float, bytes);
        self.release(entry.range);
        Ok(values)
    }

    /// The raw little-endian bytes of a tensor, as stored.
    pub fn raw(&self, key: &str) -> Option<&[u8]> {
        self.tensors
            .get(key)
            .map(|e| &self.map[e.range.0..e.range.1])
    }

    /// Drops the mapped pages of a tensor that has been copied out, so that loading a model
    /// does not keep the whole file resident beside the model it became (the pages are
    /// re-read from the file if touched again).
    fn release(&self, range: (usize, usize)) {
        #[cfg(unix)]
        // SAFETY: the map is a read-only mapping of a file; MADV_DONTNEED only drops resident
        // pages, which the kernel refills from the file on the next access, so no reader can
        // observe a change. No reference into this range outlives the decode above.
        unsafe {
            let _ = self.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                range.0,
                range.1 - range.0,
            );
        }
        #[cfg(not(unix))]
        let _ = range;
    }
}

impl SafetensorsFile {
    /// Reads an integer tensor (I32, I64, U8, ...) as i64 values (token ids, buffers).
    pub fn read_ints(&self, key: &str) -> Result<Vec<i64>, WeightsError> {
        let bad = |problem: String| WeightsError::BadFile {
            path: self.path.clone(),
            problem,
        };
        let entry = self
            .tensors
            .get(key)
            .ok_or_else(|| bad(format!("no tensor named '{key}'")))?;
        let b = &self.map[entry.range.0..entry.range.1];
        Ok(match entry.dtype {
            Dtype::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            Dtype::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64)
                .collect(),
            Dtype::U8 => b.iter().map(|&v| v as i64).collect(),
            other => {
                return Err(bad(format!(
                    "tensor '{key}' has dtype {other:?}, not an integer type"
                )));
            }
        })
    }
}

/// The float type of a safetensors dtype, if it is one we read.
pub fn float_type(dtype: Dtype) -> Option<FloatType> {
    match dtype {
        Dtype::F32 => Some(FloatType::F32),
        Dtype::F16 => Some(FloatType::F16),
        Dtype::BF16 => Some(FloatType::BF16),
        Dtype::F64 => Some(FloatType::F64),
        _ => None,
    }
}

/// Little-endian bytes to f32 values. Works on unaligned data (mapped files give no alignment
/// promise beyond the header's).
fn decode_floats(t: FloatType, bytes: &[u8]) -> Vec<f32> {
    match t {
        FloatType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        FloatType::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        FloatType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        FloatType::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
    }
}
