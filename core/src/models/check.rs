//! `clearpaint weights check`: validates a weights folder or file against the architecture it
//! claims (its `config.json` / `model_index.json`, its key layout, or `--as`), key by key,
//! shape by shape and dtype by dtype, without reading tensor data (a dry-run load of a lazily
//! built model, so checking an 860M-parameter UNet takes a second and no memory).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use burn::tensor::Device;

use super::augan::{AuganGenerator, Direction};
use super::clip::{self, ClipTextConfig, ClipTextModel};
use super::clip_vision::ClipVisionConfig;
use super::ldm;
use super::paint_by_example::{self, PaintByExampleImageEncoder};
use super::unet::{self, UNet2DConditionModel, UNetConfig};
use super::vae::{self, AutoencoderKL, VaeConfig, VaeConfigJson};
use crate::weights::{
    KeyRemap, LoadOptions, LoadReport, SafetensorsFile, WeightsError, component_files, load_module,
    read_config,
};

/// What a path holds (or is claimed to hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A diffusers Stable Diffusion pipeline folder.
    Pipeline,
    /// A single-file SD 1.x checkpoint (LDM layout).
    Checkpoint,
    UNet,
    Vae,
    AsymmetricVae,
    TextEncoder,
    /// Paint-by-Example's image encoder (CLIP vision tower + mapper).
    ImageEncoder,
    Augan,
}

impl ModelKind {
    pub const ALL: [ModelKind; 8] = [
        ModelKind::Pipeline,
        ModelKind::Checkpoint,
        ModelKind::UNet,
        ModelKind::Vae,
        ModelKind::AsymmetricVae,
        ModelKind::TextEncoder,
        ModelKind::ImageEncoder,
        ModelKind::Augan,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Pipeline => "pipeline",
            ModelKind::Checkpoint => "checkpoint",
            ModelKind::UNet => "unet",
            ModelKind::Vae => "vae",
            ModelKind::AsymmetricVae => "asym-vae",
            ModelKind::TextEncoder => "text-encoder",
            ModelKind::ImageEncoder => "image-encoder",
            ModelKind::Augan => "augan",
        }
    }

    /// How the reference libraries name it.
    pub fn describe(self) -> &'static str {
        match self {
            ModelKind::Pipeline => "a diffusers Stable Diffusion pipeline folder",
            ModelKind::Checkpoint => "a single-file SD 1.x checkpoint",
            ModelKind::UNet => "a UNet2DConditionModel",
            ModelKind::Vae => "an AutoencoderKL (VAE)",
            ModelKind::AsymmetricVae => "an AsymmetricAutoencoderKL (asymmetric VAE)",
            ModelKind::TextEncoder => "a CLIPTextModel (text encoder)",
            ModelKind::ImageEncoder => "a PaintByExampleImageEncoder (image encoder)",
            ModelKind::Augan => "an AU-GAN generator",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ModelKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ModelKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown model kind '{s}' (one of: {})", names.join(", "))
            })
    }
}

/// The result of checking one model (a component, or a whole file).
#[derive(Debug, Clone)]
pub struct PartCheck {
    /// The folder or file checked.
    pub path: PathBuf,
    pub kind: Option<ModelKind>,
    /// Tensors that fit the model.
    pub tensors: usize,
    /// Parameters in the model (when it could be built).
    pub parameters: usize,
    /// Element types found, with counts (`F16: 686`).
    pub dtypes: Vec<(String, usize)>,
    /// One line each; empty when the part is OK.
    pub problems: Vec<String>,
}

impl PartCheck {
    fn new(path: &Path, kind: Option<ModelKind>) -> Self {
        PartCheck {
            path: path.to_path_buf(),
            kind,
            tensors: 0,
            parameters: 0,
            dtypes: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn shape_str(s: &[usize]) -> String {
    let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Turns a dry-run load report into problem lines.
fn report_problems(report: &LoadReport, out: &mut Vec<String>) {
    for m in &report.mismatched {
        out.push(format!(
            "wrong shape: {} is {} in the file, the model needs {}",
            m.file_key,
            shape_str(&m.found),
            shape_str(&m.expected)
        ));
    }
    for (k, why) in &report.unreadable {
        out.push(format!("wrong dtype: {k} has {why}"));
    }
    for (k, s) in &report.missing {
        out.push(format!("missing tensor: {k} {}", shape_str(s)));
    }
    for k in &report.unexpected {
        out.push(format!("unexpected tensor: {k}"));
    }
}

/// What the keys of `files` look like, whatever the config says.
pub fn guess_kind(files: &[SafetensorsFile]) -> Option<ModelKind> {
    let has = |k: &str| files.iter().any(|f| f.entry(k).is_some());
    let any = |p: &str| files.iter().any(|f| f.keys().any(|k| k.starts_with(p)));
    if files.iter().any(ldm::is_ldm_checkpoint) {
        Some(ModelKind::Checkpoint)
    } else if has("conv_in.weight") && has("time_embedding.linear_1.weight") {
        Some(ModelKind::UNet)
    } else if any("decoder.condition_encoder.") || any("decoder.encoder.") {
        Some(ModelKind::AsymmetricVae)
    } else if has("encoder.conv_in.weight") && has("decoder.conv_in.weight") {
        Some(ModelKind::Vae)
    } else if any("text_model.embeddings.") || any("embeddings.token_embedding.") {
        Some(ModelKind::TextEncoder)
    } else if any("model.vision_model.") && any("mapper.blocks.") {
        Some(ModelKind::ImageEncoder)
    } else if has("e1.conv") && has("out") {
        Some(ModelKind::Augan)
    } else {
        None
    }
}

fn dtypes(files: &[SafetensorsFile]) -> Vec<(String, usize)> {
    let mut m = std::collections::BTreeMap::<String, usize>::new();
    for f in files {
        for k in f.keys() {
            if let Some(e) = f.entry(k) {
                *m.entry(format!("{:?}", e.dtype)).or_insert(0) += 1;
            }
        }
    }
    m.into_iter().collect()
}

/// Dry-run loads `module` from `files`, filling `part`.
fn dry_run<M: burn::module::Module>(
    module: M,
    files: &[SafetensorsFile],
    remap: KeyRemap,
    part: &mut PartCheck,
) {
    part.parameters += module.num_params();
    let options = LoadOptions {
        remap,
        allow_partial: false,
        dry_run: true,
        float_dtype: None,
    };
    let report = match load_module(module, files, &options) {
        Ok((_, r)) => r,
        Err(WeightsError::Mismatch { report, .. }) => *report,
        Err(e) => {
            part.problems.push(e.problem());
            return;
        }
    };
    part.tensors += report.loaded;
    report_problems(&report, &mut part.problems);
    // Many missing and unexpected tensors at once: the weights are another model's.
    if report.missing.len() > report.loaded
        && let (Some(claimed), Some(found)) = (part.kind, guess_kind(files))
        && claimed != found
    {
        part.problems.insert(
            0,
            format!(
                "wrong model type: the tensors are {}'s, not {}'s",
                found.describe(),
                claimed.describe()
            ),
        );
    }
}

/// The kind a component folder's config claims.
fn claimed_kind(config: &Path) -> Result<ModelKind, String> {
    #[derive(serde::Deserialize)]
    struct Claim {
        #[serde(rename = "_class_name")]
        class_name: Option<String>,
        architectures: Option<Vec<String>>,
        model_type: Option<String>,
    }
    let c: Claim = read_config(config).map_err(|e| e.problem())?;
    let name = c
        .class_name
        .or_else(|| c.architectures.and_then(|a| a.into_iter().next()))
        .or(c.model_type)
        .unwrap_or_default();
    match name.as_str() {
        "UNet2DConditionModel" => Ok(ModelKind::UNet),
        "AutoencoderKL" => Ok(ModelKind::Vae),
        "AsymmetricAutoencoderKL" => Ok(ModelKind::AsymmetricVae),
        "CLIPTextModel" | "clip_text_model" => Ok(ModelKind::TextEncoder),
        "PaintByExampleImageEncoder" => Ok(ModelKind::ImageEncoder),
        "" => Err("config.json names no model class (_class_name or architectures)".into()),
        other => Err(format!(
            "config.json describes '{other}', which clearpaint does not run"
        )),
    }
}

/// Checks a component folder (`unet/`, `vae/`, `text_encoder/`, an asymmetric VAE folder).
pub fn check_component(dir: &Path, expect: Option<ModelKind>) -> PartCheck {
    let mut part = PartCheck::new(dir, expect);
    let comp = match component_files(dir) {
        Ok(c) => c,
        Err(e) => {
            part.problems.push(e.problem());
            return part;
        }
    };
    let claimed = match claimed_kind(&comp.config) {
        Ok(k) => k,
        Err(p) => {
            part.problems
                .push(format!("{}: {p}", comp.config.display()));
            return part;
        }
    };
    part.kind = Some(claimed);
    if let Some(e) = expect {
        let vae_ok = e == ModelKind::Vae && claimed == ModelKind::AsymmetricVae;
        if e != claimed && !vae_ok {
            part.problems.push(format!(
                "wrong model type: config.json describes {}, expected {}",
                claimed.describe(),
                e.describe()
            ));
            return part;
        }
    }
    let mut files = Vec::new();
    for w in &comp.weights {
        match SafetensorsFile::open(w) {
            Ok(f) => files.push(f),
            Err(e) => part.problems.push(e.to_string()),
        }
    }
    if !part.problems.is_empty() {
        return part;
    }
    part.dtypes = dtypes(&files);
    let device = Device::flex();
    let config_err = |p: String| format!("{}: invalid config: {p}", comp.config.display());
    match claimed {
        ModelKind::UNet => match comp
            .validated_config(UNetConfig::validate)
            .map_err(|e| e.problem())
        {
            Ok(c) => dry_run(
                UNet2DConditionModel::new(&c, &device),
                &files,
                unet::remap(),
                &mut part,
            ),
            Err(p) => part.problems.push(config_err(p)),
        },
        ModelKind::Vae | ModelKind::AsymmetricVae => {
            match read_config::<VaeConfigJson>(&comp.config)
                .map_err(|e| e.problem())
                .and_then(|j| VaeConfig::from_json(&j))
            {
                Ok(c) => {
                    let remap = vae::remap_for(&files, &c);
                    dry_run(AutoencoderKL::new(&c, &device), &files, remap, &mut part)
                }
                Err(p) => part.problems.push(config_err(p)),
            }
        }
        ModelKind::TextEncoder => match comp
            .validated_config(ClipTextConfig::validate)
            .map_err(|e| e.problem())
        {
            Ok(c) => dry_run(
                ClipTextModel::new(&c, &device),
                &files,
                clip::remap(),
                &mut part,
            ),
            Err(p) => part.problems.push(config_err(p)),
        },
        ModelKind::ImageEncoder => match comp
            .validated_config(ClipVisionConfig::validate)
            .map_err(|e| e.problem())
        {
            Ok(c) => dry_run(
                PaintByExampleImageEncoder::new(&c, &device),
                &files,
                paint_by_example::remap(),
                &mut part,
            ),
            Err(p) => part.problems.push(config_err(p)),
        },
        _ => unreachable!("claimed_kind returns component kinds only"),
    }
    part
}

/// Checks a single `.safetensors` file: an LDM checkpoint (its three models) or an AU-GAN file.
pub fn check_file(path: &Path, expect: Option<ModelKind>) -> Vec<PartCheck> {
    let mut part = PartCheck::new(path, expect);
    let file = match SafetensorsFile::open(path) {
        Ok(f) => f,
        Err(e) => {
            part.problems.push(e.problem());
            return vec![part];
        }
    };
    let found = guess_kind(std::slice::from_ref(&file));
    let kind = match (expect, found) {
        (Some(e), Some(f)) if e != f => {
            part.problems.push(format!(
                "wrong model type: the tensors are {}'s, not {}'s",
                f.describe(),
                e.describe()
            ));
            return vec![part];
        }
        (_, Some(f)) => f,
        (Some(e), None) => e,
        (None, None) => {
            part.problems.push(
                "not a model clearpaint recognises: a single-file SD 1.x checkpoint has \
                 model.diffusion_model.* tensors, an AU-GAN file e1.conv ...; a lone diffusers \
                 component file needs its folder (with config.json)"
                    .into(),
            );
            return vec![part];
        }
    };
    part.kind = Some(kind);
    part.dtypes = dtypes(std::slice::from_ref(&file));
    let device = Device::flex();
    match kind {
        ModelKind::Checkpoint => {
            let files = std::slice::from_ref(&file);
            let mut parts = Vec::new();
            let mut unet_part =
                PartCheck::new(&path.join("model.diffusion_model"), Some(ModelKind::UNet));
            match ldm::unet_config(&file) {
                Ok(c) => {
                    let remap = ldm::unet_remap(&c);
                    dry_run(
                        UNet2DConditionModel::new(&c, &device),
                        files,
                        remap,
                        &mut unet_part,
                    )
                }
                Err(e) => unet_part.problems.push(e.problem()),
            }
            parts.push(unet_part);
            let mut vae_part =
                PartCheck::new(&path.join("first_stage_model"), Some(ModelKind::Vae));
            match ldm::vae_config(&file) {
                Ok(c) => {
                    let remap = ldm::vae_remap(&c);
                    dry_run(AutoencoderKL::new(&c, &device), files, remap, &mut vae_part)
                }
                Err(e) => vae_part.problems.push(e.problem()),
            }
            parts.push(vae_part);
            let mut te_part = PartCheck::new(
                &path.join("cond_stage_model.transformer"),
                Some(ModelKind::TextEncoder),
            );
            match ldm::text_config(&file) {
                Ok(c) => dry_run(
                    ClipTextModel::new(&c, &device),
                    files,
                    ldm::text_remap(),
                    &mut te_part,
                ),
                Err(e) => te_part.problems.push(e.problem()),
            }
            parts.push(te_part);
            for p in &mut parts {
                p.dtypes = part.dtypes.clone();
            }
            parts
        }
        ModelKind::Augan => {
            // Each generator the file holds (night-to-day's error when it holds none).
            let mut dirs = AuganGenerator::directions(&file);
            if dirs.is_empty() {
                dirs.push(Direction::NightToDay);
            }
            for d in dirs {
                match AuganGenerator::config_for(&file, d) {
                    Ok(c) => dry_run(
                        AuganGenerator::new(c, &device),
                        std::slice::from_ref(&file),
                        AuganGenerator::load_options(d).remap,
                        &mut part,
                    ),
                    Err(e) => part.problems.push(e.problem()),
                }
            }
            vec![part]
        }
        other => {
            part.problems.push(format!(
                "{} is a component of a diffusers folder: check the folder that holds it and its \
                 config.json",
                other.describe()
            ));
            vec![part]
        }
    }
}

/// Checks a diffusers pipeline folder: model_index.json (if present), unet/, vae/,
/// text_encoder/ (all required; image_encoder/ instead for Paint-by-Example), the scheduler
/// config.
pub fn check_pipeline(dir: &Path) -> Vec<PartCheck> {
    let mut parts = Vec::new();
    let mut top = PartCheck::new(dir, Some(ModelKind::Pipeline));
    let index = dir.join("model_index.json");
    if index.is_file()
        && let Err(e) = read_config::<serde_json::Value>(&index)
    {
        top.problems.push(e.to_string());
    }
    let sched = dir.join("scheduler").join("scheduler_config.json");
    if sched.is_file() {
        match read_config::<crate::schedulers::SchedulerConfig>(&sched) {
            Ok(c) => {
                if let Err(p) = c.validate() {
                    top.problems.push(format!("{}: {p}", sched.display()));
                }
            }
            Err(e) => top.problems.push(e.to_string()),
        }
    }
    let encoder = if dir.join("image_encoder").is_dir() && !dir.join("text_encoder").is_dir() {
        ("image_encoder", ModelKind::ImageEncoder)
    } else {
        ("text_encoder", ModelKind::TextEncoder)
    };
    for (sub, kind) in [("unet", ModelKind::UNet), ("vae", ModelKind::Vae), encoder] {
        let d = dir.join(sub);
        if !d.is_dir() {
            top.problems
                .push(format!("missing component: no {sub}/ folder"));
            continue;
        }
        parts.push(check_component(&d, Some(kind)));
    }
    let mut out = vec![top];
    out.extend(parts);
    out
}

/// Checks whatever `path` is: a pipeline folder, a component folder or a single file.
/// `expect` is the kind the caller claims it is (`--as`).
pub fn check_path(path: &Path, expect: Option<ModelKind>) -> Vec<PartCheck> {
    if path.is_file() {
        return check_file(path, expect);
    }
    if !path.is_dir() {
        let mut p = PartCheck::new(path, expect);
        p.problems.push("no such file or folder".into());
        return vec![p];
    }
    let is_pipeline = path.join("model_index.json").is_file()
        || (!path.join("config.json").is_file() && path.join("unet").is_dir());
    match expect {
        Some(ModelKind::Pipeline) | None if is_pipeline => check_pipeline(path),
        Some(ModelKind::Pipeline) => {
            let mut p = PartCheck::new(path, expect);
            p.problems.push(
                "wrong model type: not a diffusers pipeline folder (no model_index.json and no \
                 unet/)"
                    .into(),
            );
            vec![p]
        }
        _ if is_pipeline => {
            let mut p = PartCheck::new(path, expect);
            p.problems.push(format!(
                "wrong model type: a diffusers pipeline folder, expected {}",
                expect.map(|k| k.describe()).unwrap_or("")
            ));
            vec![p]
        }
        _ => vec![check_component(path, expect)],
    }
}
