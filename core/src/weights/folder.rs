//! diffusers-style model folders.
//!
//! A pipeline folder (`stable-diffusion-inpainting/`) holds one folder per component (`unet/`,
//! `vae/`, `text_encoder/`, ...). Each component folder holds `config.json` and its weights:
//! `diffusion_pytorch_model.safetensors` (diffusers models), `model.safetensors` (transformers
//! models such as the CLIP text encoder), their `.fp16.` variants, or a sharded set listed in
//! `*.safetensors.index.json`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::{SafetensorsFile, WeightsError};

/// The weight files of one component folder.
#[derive(Debug)]
pub struct ComponentFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    /// One file, or the shards of a sharded checkpoint.
    pub weights: Vec<PathBuf>,
}

impl ComponentFiles {
    /// Opens and validates every weight file.
    pub fn open(&self) -> Result<Vec<SafetensorsFile>, WeightsError> {
        self.weights.iter().map(SafetensorsFile::open).collect()
    }

    pub fn config<T: DeserializeOwned>(&self) -> Result<T, WeightsError> {
        read_config(&self.config)
    }

    /// The config, checked by `validate` (whose message names what is unsupported).
    pub fn validated_config<T: DeserializeOwned>(
        &self,
        validate: impl Fn(&T) -> Result<(), String>,
    ) -> Result<T, WeightsError> {
        let config: T = self.config()?;
        validate(&config).map_err(|problem| WeightsError::BadConfig {
            path: self.config.clone(),
            problem,
        })?;
        Ok(config)
    }
}

const STEMS: [&str; 2] = ["diffusion_pytorch_model", "model"];

/// Finds the config and weights of the component folder `dir`. f32 files are preferred over
/// `.fp16` ones when both exist (they load to the same f32 parameters, with more precision).
pub fn component_files(dir: impl AsRef<Path>) -> Result<ComponentFiles, WeightsError> {
    let dir = dir.as_ref().to_path_buf();
    let folder_err = |problem: String| WeightsError::BadFolder {
        path: dir.clone(),
        problem,
    };
    if !dir.is_dir() {
        return Err(folder_err(if dir.exists() {
            "is not a folder".into()
        } else {
            "no such folder".into()
        }));
    }
    let config = dir.join("config.json");
    if !config.is_file() {
        return Err(folder_err(
            "no config.json (expected a diffusers/transformers component folder)".into(),
        ));
    }
    for stem in STEMS {
        for variant in ["", ".fp16"] {
            let single = dir.join(format!("{stem}{variant}.safetensors"));
            if single.is_file() {
                return Ok(ComponentFiles {
                    dir,
                    config,
                    weights: vec![single],
                });
            }
            let index = dir.join(format!("{stem}{variant}.safetensors.index.json"));
            if index.is_file() {
                let shards = read_index(&index)?;
                return Ok(ComponentFiles {
                    dir,
                    config,
                    weights: shards,
                });
            }
        }
    }
    let has_bin = ["diffusion_pytorch_model.bin", "pytorch_model.bin"]
        .iter()
        .any(|f| dir.join(f).is_file());
    Err(folder_err(if has_bin {
        "only PyTorch .bin weights found; clearpaint reads .safetensors (convert the folder with \
         diffusers' save_pretrained(..., safe_serialization=True))"
            .into()
    } else {
        "no weights: expected diffusion_pytorch_model.safetensors, model.safetensors or an \
         .fp16.safetensors variant"
            .into()
    }))
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: std::collections::BTreeMap<String, String>,
}

fn read_index(index: &Path) -> Result<Vec<PathBuf>, WeightsError> {
    let parsed: ShardIndex = read_config(index)?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let files: BTreeSet<&String> = parsed.weight_map.values().collect();
    let mut out = Vec::new();
    for f in files {
        let p = dir.join(f);
        if !p.is_file() {
            return Err(WeightsError::BadFolder {
                path: index.to_path_buf(),
                problem: format!("lists shard '{f}', which is not in the folder"),
            });
        }
        out.push(p);
    }
    if out.is_empty() {
        return Err(WeightsError::BadConfig {
            path: index.to_path_buf(),
            problem: "the weight_map lists no files".into(),
        });
    }
    Ok(out)
}

/// Reads a JSON config into `T`; unknown keys are ignored, errors name the file and the field.
pub fn read_config<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T, WeightsError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| WeightsError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| WeightsError::BadConfig {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })
}
