//! A memory-mapped `.safetensors` file, validated once when opened.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata, SafeTensorError, SafeTensors};

use super::WeightsError;

/// A float tensor as stored: its type, its bytes and their range in the file.
type StoredFloats<'a> = (FloatType, &'a [u8], (usize, usize));
/// Element types we can read into f32 parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatType {
    F32,
    F16,
    BF16,
    F64,
}

/// A tensor's values on the host, in the element type its parameter is held in.
#[derive(Debug, Clone, PartialEq)]
pub enum HostFloats {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
    BF16(Vec<half::bf16>),
}

impl HostFloats {
    /// A `[rows, cols]` matrix transposed to `[cols, rows]`.
    pub fn transposed(self, rows: usize, cols: usize) -> HostFloats {
        fn t<T: Copy + Default>(v: Vec<T>, rows: usize, cols: usize) -> Vec<T> {
            let mut out = vec![T::default(); v.len()];
            for r in 0..rows {
                for c in 0..cols {
                    out[c * rows + r] = v[r * cols + c];
                }
            }
            out
        }
        match self {
            HostFloats::F32(v) => HostFloats::F32(t(v, rows, cols)),
            HostFloats::F16(v) => HostFloats::F16(t(v, rows, cols)),
            HostFloats::BF16(v) => HostFloats::BF16(t(v, rows, cols)),
        }
    }

    /// burn tensor data shaped `shape`, in this element type.
    pub fn into_data(self, shape: Vec<usize>) -> burn::tensor::TensorData {
        use burn::tensor::TensorData;
        match self {
            HostFloats::F32(v) => TensorData::new(v, shape),
            HostFloats::F16(v) => TensorData::new(v, shape),
            HostFloats::BF16(v) => TensorData::new(v, shape),
        }
    }
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
        let (float, bytes, range) = self.float_bytes(key)?;
        let values = decode_floats(float, bytes);
        self.release(range);
        Ok(values)
    }

    /// Reads a floating-point tensor for parameters held in `target` (f32, f16 or bf16): a
    /// tensor the file already stores in `target` is copied as stored, with no f32 copy on the
    /// host; any other is converted per element (through f32, rounding to nearest even, as a
    /// cast of the f32 values would).
    pub fn read_for(&self, key: &str, target: FloatType) -> Result<HostFloats, WeightsError> {
        let (float, bytes, range) = self.float_bytes(key)?;
        let values = match (target, float) {
            (FloatType::F16, FloatType::F16) => HostFloats::F16(
                bytes
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            (FloatType::BF16, FloatType::BF16) => HostFloats::BF16(
                bytes
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            ),
            (FloatType::F16, _) => HostFloats::F16(
                decode_floats(float, bytes)
                    .into_iter()
                    .map(half::f16::from_f32)
                    .collect(),
            ),
            (FloatType::BF16, _) => HostFloats::BF16(
                decode_floats(float, bytes)
                    .into_iter()
                    .map(half::bf16::from_f32)
                    .collect(),
            ),
            _ => HostFloats::F32(decode_floats(float, bytes)),
        };
        self.release(range);
        Ok(values)
    }

    /// A float tensor's type, stored bytes and byte range.
    fn float_bytes(&self, key: &str) -> Result<StoredFloats<'_>, WeightsError> {
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
        Ok((float, bytes, entry.range))
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
