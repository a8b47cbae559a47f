//! Putting safetensors tensors into a burn module, with a report of what did not fit.
//!
//! Module parameter paths are the struct field names joined with `.` (Vec elements by index),
//! which mirror the diffusers / PyTorch state-dict names. Three PyTorch conventions are bridged
//! here, by module type, so models need no per-layer remaps for them:
//! * `Linear.weight` is `[out, in]` in PyTorch and `[in, out]` in burn: transposed on load. A
//!   `[out, in, 1, 1]` weight (1x1-conv-shaped attention projections in old VAE files) is
//!   accepted for a Linear too.
//! * norm layers' `gamma` / `beta` are PyTorch's `weight` / `bias`.
//! * enum variant names (a module that is a conv or a linear by config) are not path segments.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, FloatDType, Tensor};
use regex::Regex;

use super::{FloatType, SafetensorsFile, WeightsError};

/// An ordered list of rewrite rules from file keys to module paths. The first rule whose
/// pattern matches a key rewrites it (with `$1`-style captures); later rules see the result.
/// Keys matched by an `ignore` pattern are dropped (not reported as unexpected).
#[derive(Debug, Clone, Default)]
pub struct KeyRemap {
    rules: Vec<(Regex, String)>,
    ignore: Vec<Regex>,
    /// Only keys with one of these prefixes belong to the model (one component of a
    /// single-file checkpoint); others are skipped silently.
    only: Vec<String>,
}

impl KeyRemap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rewrite rule. `pattern` is a regex; panics only on an invalid pattern, which is a
    /// programming error in a constant table.
    pub fn rule(mut self, pattern: &str, replacement: &str) -> Self {
        let re = Regex::new(pattern).expect("invalid remap pattern");
        self.rules.push((re, replacement.to_string()));
        self
    }

    /// Drops file keys matching `pattern` (parts of a checkpoint the model does not use).
    pub fn ignore(mut self, pattern: &str) -> Self {
        let re = Regex::new(pattern).expect("invalid ignore pattern");
        self.ignore.push(re);
        self
    }

    /// Keeps only keys starting with `prefix` (and strips it): one component of a checkpoint
    /// that holds several. Several calls keep the keys of any of the prefixes.
    pub fn only(mut self, prefix: &str) -> Self {
        self.only.push(prefix.to_string());
        self
    }

    /// Appends the rules of `other` after ours.
    pub fn extend(mut self, other: KeyRemap) -> Self {
        self.rules.extend(other.rules);
        self.ignore.extend(other.ignore);
        self.only.extend(other.only);
        self
    }

    /// The module path for file key `key`, or `None` if the key is ignored.
    pub fn apply(&self, key: &str) -> Option<String> {
        let key = if self.only.is_empty() {
            key
        } else {
            self.only
                .iter()
                .find_map(|p| key.strip_prefix(p.as_str()))?
        };
        if self.ignore.iter().any(|re| re.is_match(key)) {
            return None;
        }
        let mut k = key.to_string();
        for (re, rep) in &self.rules {
            if re.is_match(&k) {
                k = re.replace_all(&k, rep.as_str()).into_owned();
            }
        }
        Some(k)
    }
}

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub remap: KeyRemap,
    /// Accept missing and unexpected keys (shape mismatches are always errors).
    pub allow_partial: bool,
    /// Check keys, shapes and dtypes only: no tensor data is read and the module keeps its
    /// (lazy, never materialised) initial parameters. `clearpaint weights check` uses this.
    pub dry_run: bool,
    /// The float type parameters go to the device in: tensors stored in it are copied as they
    /// are, others converted per element on the host (no f32 copy of a half-precision model on
    /// the host or the device); `None`: f32.
    pub float_dtype: Option<FloatDType>,
}

/// A parameter whose file tensor has a different shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// Module path.
    pub key: String,
    /// Key in the file, if different from the module path.
    pub file_key: String,
    /// Shape the model expects (in PyTorch layout for Linear weights, as in the file).
    pub expected: Vec<usize>,
    /// Shape in the file.
    pub found: Vec<usize>,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Parameters set from the file.
    pub loaded: usize,
    /// Parameters no file tensor maps to, by their PyTorch state-dict name, with the shape
    /// (in PyTorch layout) they expect.
    pub missing: Vec<(String, Vec<usize>)>,
    /// File tensors (by file key) that map to no module parameter.
    pub unexpected: Vec<String>,
    pub mismatched: Vec<ShapeMismatch>,
    /// Tensors that could not be read (e.g. an integer dtype where a float weight belongs).
    pub unreadable: Vec<(String, String)>,
}

impl LoadReport {
    /// No missing, unexpected, mismatched or unreadable tensors.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.mismatched.is_empty()
            && self.unreadable.is_empty()
    }

    /// Problems that make a load fail even when partial loads are allowed.
    pub fn has_hard_errors(&self) -> bool {
        !self.mismatched.is_empty() || !self.unreadable.is_empty()
    }
}

fn shape_str(s: &[usize]) -> String {
    format!(
        "[{}]",
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Lists at most `n` items and says how many more there are.
fn some<T>(items: &[T], n: usize, f: impl Fn(&T) -> String) -> String {
    let mut parts: Vec<String> = items.iter().take(n).map(f).collect();
    if items.len() > n {
        parts.push(format!("and {} more", items.len() - n));
    }
    parts.join(", ")
}

impl fmt::Display for LoadReport {
    /// One line: "2 missing (a [3], b [4]); 1 unexpected (c); 1 shape mismatch (d: model [8, 4], file [8, 3])".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.mismatched.is_empty() {
            parts.push(format!(
                "{} shape mismatch{} ({})",
                self.mismatched.len(),
                if self.mismatched.len() == 1 { "" } else { "es" },
                some(&self.mismatched, 4, |m| {
                    let name = if m.file_key == m.key {
                        m.key.clone()
                    } else {
                        format!("{} (file key {})", m.key, m.file_key)
                    };
                    format!(
                        "{name}: model {}, file {}",
                        shape_str(&m.expected),
                        shape_str(&m.found)
                    )
                })
            ));
        }
        if !self.missing.is_empty() {
            parts.push(format!(
                "{} missing ({})",
                self.missing.len(),
                some(&self.missing, 4, |(k, s)| format!("{k} {}", shape_str(s)))
            ));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!(
                "{} unexpected ({})",
                self.unexpected.len(),
                some(&self.unexpected, 4, |k| k.clone())
            ));
        }
        if !self.unreadable.is_empty() {
            parts.push(format!(
                "{} unreadable ({})",
                self.unreadable.len(),
                some(&self.unreadable, 4, |(k, why)| format!("{k}: {why}"))
            ));
        }
        if parts.is_empty() {
            write!(f, "{} tensors loaded, all keys matched", self.loaded)
        } else {
            write!(f, "{}", parts.join("; "))
        }
    }
}

/// Loads `files` into `module`. Fails with the report when keys are missing or unexpected
/// (unless `allow_partial`) or when any shape does not match.
pub fn load_module<M: Module>(
    module: M,
    files: &[SafetensorsFile],
    options: &LoadOptions,
) -> Result<(M, LoadReport), WeightsError> {
    // Module path -> (file index, file key).
    let mut index: HashMap<String, (usize, String)> = HashMap::new();
    for (fi, file) in files.iter().enumerate() {
        for key in file.keys() {
            if let Some(path) = options.remap.apply(key) {
                index.insert(path, (fi, key.to_string()));
            }
        }
    }
    let mut loader = Loader {
        dtype: options.float_dtype.unwrap_or(FloatDType::F32).into(),
        dry_run: options.dry_run,
        files,
        index,
        at: ModulePath::default(),
        used: BTreeSet::new(),
        report: LoadReport::default(),
    };
    let module = module.map(&mut loader);
    let Loader {
        index,
        used,
        mut report,
        ..
    } = loader;
    let mut unexpected: Vec<String> = index
        .iter()
        .filter(|(path, _)| !used.contains(*path))
        .map(|(_, (_, key))| key.clone())
        .collect();
    unexpected.sort();
    report.unexpected = unexpected;
    report.missing.sort();

    let fail = report.has_hard_errors() || (!options.allow_partial && !report.is_complete());
    if fail {
        let path = match files {
            [one] => one.path().display().to_string(),
            [] => "(no weight files)".to_string(),
            [first, ..] => format!("{} (+{} more)", first.path().display(), files.len() - 1),
        };
        return Err(WeightsError::Mismatch {
            path,
            report: Box::new(report),
        });
    }
    Ok((module, report))
}

/// Where a [`ModuleMapper`] is in a module: the parameter's path as PyTorch names it (struct
/// field names joined by `.`, Vec elements by index, enum variants left out) and the container
/// types around it (`Struct:Linear`, ...).
#[derive(Debug, Default)]
pub struct ModulePath {
    pub path: Vec<String>,
    pub containers: Vec<String>,
}

impl ModulePath {
    pub fn enter(&mut self, name: &str, container_type: &str) {
        // Enum variant names are not part of PyTorch paths (`proj_in.weight`, not
        // `proj_in.Conv.weight`).
        if !container_type.starts_with("Enum:") {
            self.path.push(name.to_string());
        }
        self.containers.push(container_type.to_string());
    }

    pub fn exit(&mut self, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.path.pop();
        }
        self.containers.pop();
    }

    /// The innermost container's type.
    pub fn container(&self) -> &str {
        self.containers.last().map(String::as_str).unwrap_or("")
    }
}

struct Loader<'a> {
    dtype: DType,
    dry_run: bool,
    files: &'a [SafetensorsFile],
    index: HashMap<String, (usize, String)>,
    at: ModulePath,
    used: BTreeSet<String>,
    report: LoadReport,
}

/// How a parameter is stored in PyTorch files relative to burn.
enum Layout {
    Same,
    /// burn `[in, out]`, PyTorch `[out, in]` (or `[out, in, 1, 1]`).
    LinearWeight,
}

impl Loader<'_> {
    /// The file key candidates for the current parameter, and how its data is laid out.
    fn lookup(&self) -> (Vec<String>, Layout) {
        let module_type = self.at.container();
        let path = &self.at.path;
        let param = path.last().map(String::as_str).unwrap_or("");
        let parent = &path[..path.len().saturating_sub(1)];
        let with = |name: &str| {
            let mut p = parent.to_vec();
            p.push(name.to_string());
            p.join(".")
        };
        let own = path.join(".");
        let layout = if module_type == "Struct:Linear" && param == "weight" {
            Layout::LinearWeight
        } else {
            Layout::Same
        };
        let candidates = match param {
            "gamma" => vec![with("weight"), own],
            "beta" => vec![with("bias"), own],
            _ => vec![own],
        };
        (candidates, layout)
    }
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.at.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.at.exit(container_type);
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let model_shape: Vec<usize> = param.lazy_shape().to_vec();
        let (candidates, layout) = self.lookup();
        let found = candidates
            .iter()
            .find_map(|c| self.index.get(c).map(|v| (c.clone(), v.clone())));
        // Shape as PyTorch stores it.
        let torch_shape: Vec<usize> = match layout {
            Layout::LinearWeight if model_shape.len() == 2 => vec![model_shape[1], model_shape[0]],
            _ => model_shape.clone(),
        };
        let own = self.at.path.join(".");
        let Some((path, (fi, file_key))) = found else {
            // Named as a PyTorch state dict names it (norms' `weight`, not burn's `gamma`).
            self.report
                .missing
                .push((candidates[0].clone(), torch_shape));
            return param;
        };
        self.used.insert(path.clone());
        let file = &self.files[fi];
        let Some(entry) = file.entry(&file_key) else {
            return param;
        };
        let file_shape = entry.shape.clone();
        let matches = file_shape == torch_shape
            || (matches!(layout, Layout::LinearWeight)
                && file_shape.len() == 4
                && file_shape[2..] == [1, 1]
                && file_shape[..2] == torch_shape[..]);
        if !matches {
            self.report.mismatched.push(ShapeMismatch {
                key: own,
                file_key,
                expected: torch_shape,
                found: file_shape,
            });
            return param;
        }
        if self.dry_run {
            if super::float_type(entry.dtype).is_none() {
                self.report.unreadable.push((
                    file_key,
                    format!(
                        "dtype {:?}; weights must be F32, F16, BF16 or F64",
                        entry.dtype
                    ),
                ));
            } else {
                self.report.loaded += 1;
            }
            return param;
        }
        let target = match self.dtype {
            DType::F16 => FloatType::F16,
            DType::BF16 => FloatType::BF16,
            _ => FloatType::F32,
        };
        let mut values = match file.read_for(&file_key, target) {
            Ok(v) => v,
            Err(e) => {
                self.report.unreadable.push((file_key, e.problem()));
                return param;
            }
        };
        if let Layout::LinearWeight = layout {
            // [out, in] -> [in, out]
            values = values.transposed(torch_shape[0], torch_shape[1]);
        }
        let device = param.lazy_device();
        let data = values.into_data(model_shape);
        let tensor = if self.dtype == DType::F32 {
            Tensor::<D>::from_data(data, &device)
        } else {
            // Already in the parameter's type: goes to the device as it is.
            Tensor::<D>::from_data(data, (&device, self.dtype))
        };
        self.report.loaded += 1;
        let id = param.id;
        param.transform_for_load(tensor, id)
    }
}

/// Keys of `files` grouped by their first path segment, with counts: a quick way to see what a
/// checkpoint holds (used by `clearpaint weights`).
pub fn key_summary(files: &[SafetensorsFile]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for f in files {
        for k in f.keys() {
            let head = k.split('.').next().unwrap_or(k).to_string();
            *out.entry(head).or_insert(0) += 1;
        }
    }
    out
}
