//! LoRA and LyCORIS files merged into the UNet and the text encoder for one run, as A1111's
//! built-in Lora extension merges them: kohya / A1111 (LoRA, LoCon with `lora_mid`), diffusers /
//! PEFT and older diffusers keys (`keys.rs`), LoHa and LoKr (`delta.rs`); ΔW x the user's
//! weight (text encoder and UNet weights separate) added to a copy of each network
//! (`apply.rs`), so the loaded base model is never changed and the next run starts clean.
//!
//! A layer that no format knows, a layer that matches nothing in the model (a LoRA for SDXL or
//! SD 2.x given to SD 1.x) or a ΔW of the wrong shape is an error naming the file and the keys.

pub mod apply;
pub mod delta;
pub mod keys;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;

use crate::weights::{SafetensorsFile, WeightsError};
use apply::Deltas;
use delta::{HostTensor, Parts};
use keys::Net;

/// One LoRA to apply, with its text-encoder and UNet weights.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    pub path: PathBuf,
    pub te: f64,
    pub unet: f64,
}

/// A LoRA file's layers, grouped by network and module.
#[derive(Debug)]
pub struct LoraFile {
    pub path: PathBuf,
    pub layers: BTreeMap<(Net, String), Parts>,
}

fn bad(path: &Path, problem: String) -> WeightsError {
    WeightsError::BadFile {
        path: path.to_path_buf(),
        problem,
    }
}

/// At most `n` names, then how many more.
fn some(names: &[String], n: usize) -> String {
    let mut s = names.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > n {
        s.push_str(&format!(" and {} more", names.len() - n));
    }
    s
}

/// Reads a LoRA `.safetensors`; keys of no known format are an error listing them.
pub fn open(path: &Path) -> Result<LoraFile, WeightsError> {
    let file = SafetensorsFile::open(path)?;
    let mut layers: BTreeMap<(Net, String), Parts> = BTreeMap::new();
    let mut unknown = Vec::new();
    for key in file.keys() {
        let Some(k) = keys::parse(key) else {
            unknown.push(key.to_string());
            continue;
        };
        let entry = file.entry(key).expect("listed key");
        let shape = entry.shape.clone();
        let values = file.read_f32(key)?;
        layers
            .entry((k.net, k.module))
            .or_default()
            .insert(k.part, HostTensor { values, shape });
    }
    if !unknown.is_empty() {
        return Err(bad(
            path,
            format!(
                "{} key(s) of no LoRA format clearpaint reads (kohya lora_unet_/lora_te_, \
                 diffusers unet./text_encoder.): {}",
                unknown.len(),
                some(&unknown, 4)
            ),
        ));
    }
    if layers.is_empty() {
        return Err(bad(path, "no LoRA layers in the file".into()));
    }
    Ok(LoraFile {
        path: path.to_path_buf(),
        layers,
    })
}

/// ΔW of every layer of `specs` for one network, summed over the files (weighted).
fn deltas(files: &[(LoraFile, &LoraSpec)], net: Net) -> Result<Deltas, WeightsError> {
    let mut out: Deltas = BTreeMap::new();
    for (file, spec) in files {
        let w = match net {
            Net::Unet => spec.unet,
            Net::Text => spec.te,
        } as f32;
        for ((n, module), parts) in &file.layers {
            if *n != net || w == 0.0 {
                continue;
            }
            let d = delta::delta(parts).map_err(|e| bad(&file.path, format!("{module}: {e}")))?;
            let shape = parts
                .values()
                .map(|t| t.shape.clone())
                .max_by_key(|s| s.len())
                .unwrap_or_default();
            match out.get_mut(module) {
                Some(acc) if acc.values.len() == d.len() => {
                    acc.values.iter_mut().zip(&d).for_each(|(a, v)| *a += w * v)
                }
                Some(_) => {
                    return Err(bad(
                        &file.path,
                        format!("{module}: ΔW of another size than an earlier LoRA's"),
                    ));
                }
                None => {
                    let values = d.into_iter().map(|v| w * v).collect();
                    out.insert(module.clone(), HostTensor { values, shape });
                }
            }
        }
    }
    Ok(out)
}

/// Our UNet module path to diffusers' (the two names our modules spell differently).
pub fn unet_to_diffusers(path: &str) -> String {
    path.replace(".ff.net.geglu.proj", ".ff.net.0.proj")
        .replace(".ff.net.out", ".ff.net.2")
}

/// Our CLIP module path to transformers' (`text_model.` prefix).
pub fn text_to_diffusers(path: &str) -> String {
    format!("text_model.{path}")
}

/// One network with the LoRAs' layers for it added. Every layer of the files for this network
/// must match one of its layers, with a ΔW of the right size.
pub fn patch_net<M: Module>(
    module: &M,
    files: &[(LoraFile, &LoraSpec)],
    net: Net,
) -> Result<Option<M>, WeightsError> {
    let d = deltas(files, net)?;
    if d.is_empty() {
        return Ok(None);
    }
    let to_diffusers = match net {
        Net::Unet => unet_to_diffusers,
        Net::Text => text_to_diffusers,
    };
    let (patched, report) = apply::patch(module.clone(), &d, to_diffusers);
    let names = files
        .iter()
        .map(|(f, _)| f.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if !report.mismatched.is_empty() {
        return Err(WeightsError::BadFolder {
            path: PathBuf::from(&names),
            problem: format!(
                "LoRA layer(s) of the wrong size for this {}: {}",
                net.name(),
                some(&report.mismatched, 3)
            ),
        });
    }
    let unmatched: Vec<String> = d
        .keys()
        .filter(|k| !report.used.contains(*k))
        .cloned()
        .collect();
    if !unmatched.is_empty() {
        return Err(WeightsError::BadFolder {
            path: PathBuf::from(&names),
            problem: format!(
                "{} LoRA layer(s) match no layer of this SD 1.x {} (a LoRA for another model, \
                 such as SDXL or SD 2.x?): {}",
                unmatched.len(),
                net.name(),
                some(&unmatched, 4)
            ),
        });
    }
    Ok(Some(patched))
}

/// Opens every spec's file.
pub fn open_all(specs: &[LoraSpec]) -> Result<Vec<(LoraFile, &LoraSpec)>, WeightsError> {
    specs.iter().map(|s| Ok((open(&s.path)?, s))).collect()
}

/// A1111's short hash of a LoRA file (`Lora hashes` in the PNG parameters): the first 12 hex
/// digits of the SHA-256 of everything after the safetensors header (kohya's "addnet" hash).
pub fn short_hash(path: &Path) -> Result<String, WeightsError> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek, SeekFrom};
    let io = |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(io)?;
    let skip = u64::from_le_bytes(len).saturating_add(8);
    f.seek(SeekFrom::Start(skip)).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(hex[..12].to_string())
}
