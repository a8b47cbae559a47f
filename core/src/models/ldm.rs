//! Single-file Stable Diffusion 1.x checkpoints in the original LDM (CompVis) key layout, as
//! A1111 / ComfyUI users keep them: `model.diffusion_model.*` (UNet), `first_stage_model.*`
//! (VAE), `cond_stage_model.transformer.*` (CLIP text encoder), plus scheduler buffers
//! (`betas`, `alphas_cumprod`, ...) and EMA bookkeeping that are skipped.
//!
//! The diffusers configs are inferred from tensor shapes (what diffusers' `from_single_file`
//! does): widths, blocks, layers per block, attention placement, projection kind, cross-attention
//! width and input channels (9 = inpainting). What shapes cannot tell (norm groups, head counts,
//! the VAE scaling factor, the text encoder's activation) takes SD 1.x's values.

use burn::tensor::{Device, FloatDType};

use super::clip::{self, ClipTextConfig, LoadedClip};
use super::unet::{self, LoadedUNet, UNetConfig};
use super::vae::{self, LoadedVae, VaeConfig, VaeConfigJson};
use crate::weights::{KeyRemap, LoadOptions, SafetensorsFile, WeightsError, load_module};

pub const UNET_PREFIX: &str = "model.diffusion_model.";
pub const VAE_PREFIX: &str = "first_stage_model.";
pub const TEXT_PREFIX: &str = "cond_stage_model.transformer.";

/// Whether `file` is a single-file LDM checkpoint (it has the LDM UNet's first conv).
pub fn is_ldm_checkpoint(file: &SafetensorsFile) -> bool {
    file.entry(&format!("{UNET_PREFIX}input_blocks.0.0.weight"))
        .is_some()
}

fn bad(file: &SafetensorsFile, problem: String) -> WeightsError {
    WeightsError::BadFile {
        path: file.path().to_path_buf(),
        problem,
    }
}

/// The shape of `key`, or an error naming the tensor a single-file checkpoint must have.
fn shape<'a>(file: &'a SafetensorsFile, key: &str) -> Result<&'a [usize], WeightsError> {
    file.entry(key).map(|e| e.shape.as_slice()).ok_or_else(|| {
        bad(
            file,
            format!("not a complete SD 1.x checkpoint: no tensor '{key}'"),
        )
    })
}

fn dim(file: &SafetensorsFile, key: &str, axis: usize, rank: usize) -> Result<usize, WeightsError> {
    let s = shape(file, key)?;
    if s.len() != rank {
        return Err(bad(
            file,
            format!("tensor '{key}' has shape {s:?}, expected {rank} dimensions"),
        ));
    }
    Ok(s[axis])
}

fn has(file: &SafetensorsFile, key: &str) -> bool {
    file.entry(key).is_some()
}

/// The largest `n` such that `{prefix}{i}{suffix}` exists for every `i < n`.
fn count(file: &SafetensorsFile, prefix: &str, suffix: &str) -> usize {
    let mut n = 0;
    while has(file, &format!("{prefix}{n}{suffix}")) {
        n += 1;
    }
    n
}

/// Layout facts of the LDM UNet, from its keys.
struct UNetLayout {
    blocks: usize,
    layers: usize,
    attention: Vec<bool>,
}

fn unet_layout(file: &SafetensorsFile) -> Result<UNetLayout, WeightsError> {
    let p = UNET_PREFIX;
    // `input_blocks.N` exists for N in 0..blocks*(layers+1); the first downsampler
    // (`input_blocks.{layers+1}.0.op`) gives the layers per block.
    let mut n_inputs = 1;
    while file
        .keys()
        .any(|k| k.starts_with(&format!("{p}input_blocks.{n_inputs}.")))
    {
        n_inputs += 1;
    }
    let first_op = (1..n_inputs).find(|i| has(file, &format!("{p}input_blocks.{i}.0.op.weight")));
    let layers = match first_op {
        Some(i) => i - 1,
        None => n_inputs - 1, // a single block
    };
    if layers == 0 || n_inputs % (layers + 1) != 0 {
        return Err(bad(
            file,
            format!(
                "unrecognised UNet layout: {n_inputs} input blocks do not split into blocks of \
                 {layers} layers and a downsampler"
            ),
        ));
    }
    let blocks = n_inputs / (layers + 1);
    let attention = (0..blocks)
        .map(|b| {
            has(
                file,
                &format!("{p}input_blocks.{}.1.proj_in.weight", 1 + b * (layers + 1)),
            )
        })
        .collect();
    Ok(UNetLayout {
        blocks,
        layers,
        attention,
    })
}

/// The UNet config of an LDM checkpoint.
pub fn unet_config(file: &SafetensorsFile) -> Result<UNetConfig, WeightsError> {
    let p = UNET_PREFIX;
    let l = unet_layout(file)?;
    let in_channels = dim(file, &format!("{p}input_blocks.0.0.weight"), 1, 4)?;
    let out_channels = dim(file, &format!("{p}out.2.weight"), 0, 4)?;
    let mut channels = Vec::new();
    for b in 0..l.blocks {
        let i = 1 + b * (l.layers + 1);
        channels.push(dim(
            file,
            &format!("{p}input_blocks.{i}.0.out_layers.3.weight"),
            0,
            4,
        )?);
    }
    let first_attn = l.attention.iter().position(|&a| a);
    let (cross, linear, transformer_layers) = match first_attn {
        Some(b) => {
            let a = format!("{p}input_blocks.{}.1.", 1 + b * (l.layers + 1));
            (
                dim(
                    file,
                    &format!("{a}transformer_blocks.0.attn2.to_k.weight"),
                    1,
                    2,
                )?,
                shape(file, &format!("{a}proj_in.weight"))?.len() == 2,
                count(file, &format!("{a}transformer_blocks."), ".norm1.weight"),
            )
        }
        None => (768, false, 1),
    };
    // SD 2.x (1024-wide OpenCLIP text) uses 64-wide heads; SD 1.x 8 heads per block.
    let heads = if cross == 1024 {
        serde_json::json!(channels.iter().map(|c| (c / 64).max(1)).collect::<Vec<_>>())
    } else {
        serde_json::json!(8)
    };
    let down: Vec<String> = l
        .attention
        .iter()
        .map(|&a| {
            if a {
                "CrossAttnDownBlock2D"
            } else {
                "DownBlock2D"
            }
            .to_string()
        })
        .collect();
    let up: Vec<String> = l
        .attention
        .iter()
        .rev()
        .map(|&a| if a { "CrossAttnUpBlock2D" } else { "UpBlock2D" }.to_string())
        .collect();
    let json = serde_json::json!({
        "_class_name": "UNet2DConditionModel",
        "in_channels": in_channels,
        "out_channels": out_channels,
        "block_out_channels": channels,
        "layers_per_block": l.layers,
        "down_block_types": down,
        "up_block_types": up,
        "attention_head_dim": heads,
        "cross_attention_dim": cross,
        "use_linear_projection": linear,
        "transformer_layers_per_block": transformer_layers.max(1),
        "norm_num_groups": 32,
    });
    let config: UNetConfig =
        serde_json::from_value(json).map_err(|e| bad(file, format!("UNet config: {e}")))?;
    config
        .validate()
        .map_err(|e| bad(file, format!("UNet: {e}")))?;
    Ok(config)
}

/// LDM UNet names to diffusers names, for a UNet of `config`'s layout.
pub fn unet_remap(config: &UNetConfig) -> KeyRemap {
    let blocks = config.block_out_channels.len();
    let layers = config.layers_per_block;
    let mut r = KeyRemap::new()
        .only(UNET_PREFIX)
        .rule(r"^time_embed\.0\.", "time_embedding.linear_1.")
        .rule(r"^time_embed\.2\.", "time_embedding.linear_2.")
        .rule(r"^input_blocks\.0\.0\.", "conv_in.")
        .rule(r"^out\.0\.", "conv_norm_out.")
        .rule(r"^out\.2\.", "conv_out.")
        .rule(r"^middle_block\.0\.", "mid_block.resnets.0.")
        .rule(r"^middle_block\.1\.", "mid_block.attentions.0.")
        .rule(r"^middle_block\.2\.", "mid_block.resnets.1.");
    for b in 0..blocks {
        for j in 0..layers {
            let i = 1 + b * (layers + 1) + j;
            r = r
                .rule(
                    &format!(r"^input_blocks\.{i}\.0\."),
                    &format!("down_blocks.{b}.resnets.{j}."),
                )
                .rule(
                    &format!(r"^input_blocks\.{i}\.1\."),
                    &format!("down_blocks.{b}.attentions.{j}."),
                );
        }
        if b + 1 < blocks {
            let i = (b + 1) * (layers + 1);
            r = r.rule(
                &format!(r"^input_blocks\.{i}\.0\.op\."),
                &format!("down_blocks.{b}.downsamplers.0.conv."),
            );
        }
    }
    for u in 0..blocks {
        let attn = config.up_block_types[u] == "CrossAttnUpBlock2D";
        for j in 0..=layers {
            let i = u * (layers + 1) + j;
            r = r.rule(
                &format!(r"^output_blocks\.{i}\.0\."),
                &format!("up_blocks.{u}.resnets.{j}."),
            );
            if attn {
                r = r.rule(
                    &format!(r"^output_blocks\.{i}\.1\."),
                    &format!("up_blocks.{u}.attentions.{j}."),
                );
            }
            if j == layers && u + 1 < blocks {
                let k = if attn { 2 } else { 1 };
                r = r.rule(
                    &format!(r"^output_blocks\.{i}\.{k}\.conv\."),
                    &format!("up_blocks.{u}.upsamplers.0.conv."),
                );
            }
        }
    }
    r.rule(r"\.in_layers\.0\.", ".norm1.")
        .rule(r"\.in_layers\.2\.", ".conv1.")
        .rule(r"\.emb_layers\.1\.", ".time_emb_proj.")
        .rule(r"\.out_layers\.0\.", ".norm2.")
        .rule(r"\.out_layers\.3\.", ".conv2.")
        .rule(r"\.skip_connection\.", ".conv_shortcut.")
        .extend(unet::remap())
}

/// The VAE config of an LDM checkpoint (SD 1.x's scaling factor 0.18215).
pub fn vae_config(file: &SafetensorsFile) -> Result<VaeConfig, WeightsError> {
    let p = VAE_PREFIX;
    let blocks = count(file, &format!("{p}encoder.down."), ".block.0.conv1.weight");
    if blocks == 0 {
        return Err(bad(
            file,
            format!(
                "not a complete SD 1.x checkpoint: no tensor '{p}encoder.down.0.block.0.conv1.weight'"
            ),
        ));
    }
    let mut channels = Vec::new();
    for b in 0..blocks {
        channels.push(dim(
            file,
            &format!("{p}encoder.down.{b}.block.0.conv1.weight"),
            0,
            4,
        )?);
    }
    let layers = count(file, &format!("{p}encoder.down.0.block."), ".conv1.weight");
    let json = VaeConfigJson {
        class_name: Some("AutoencoderKL".into()),
        in_channels: dim(file, &format!("{p}encoder.conv_in.weight"), 1, 4)?,
        out_channels: dim(file, &format!("{p}decoder.conv_out.weight"), 0, 4)?,
        latent_channels: dim(file, &format!("{p}decoder.conv_in.weight"), 1, 4)?,
        norm_num_groups: 32,
        block_out_channels: Some(channels),
        layers_per_block: Some(layers),
        down_block_out_channels: None,
        up_block_out_channels: None,
        layers_per_down_block: None,
        layers_per_up_block: None,
        down_block_types: None,
        up_block_types: None,
        act_fn: None,
        scaling_factor: Some(0.18215),
        shift_factor: None,
        use_quant_conv: Some(has(file, &format!("{p}quant_conv.weight"))),
        use_post_quant_conv: Some(has(file, &format!("{p}post_quant_conv.weight"))),
        mid_block_add_attention: Some(has(file, &format!("{p}encoder.mid.attn_1.q.weight"))),
    };
    VaeConfig::from_json(&json).map_err(|e| bad(file, format!("VAE: {e}")))
}

/// LDM VAE names to ours (the same layout as the original Asymmetric_VQGAN files).
pub fn vae_remap(config: &VaeConfig) -> KeyRemap {
    KeyRemap::new()
        .only(VAE_PREFIX)
        .extend(vae::original_layout_remap(config.up_channels.len()))
}

/// The text encoder config of an LDM checkpoint (SD 1.x: 64-wide heads, quick GELU).
pub fn text_config(file: &SafetensorsFile) -> Result<ClipTextConfig, WeightsError> {
    let p = text_prefix(file);
    let token = shape(file, &format!("{p}embeddings.token_embedding.weight"))?;
    if token.len() != 2 {
        return Err(bad(
            file,
            format!("token embedding has shape {token:?}, expected [vocab, width]"),
        ));
    }
    let (vocab, hidden) = (token[0], token[1]);
    let positions = dim(
        file,
        &format!("{p}embeddings.position_embedding.weight"),
        0,
        2,
    )?;
    let layers = count(file, &format!("{p}encoder.layers."), ".mlp.fc1.weight");
    let inter = dim(file, &format!("{p}encoder.layers.0.mlp.fc1.weight"), 0, 2)?;
    let json = serde_json::json!({
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": (hidden / 64).max(1),
        "max_position_embeddings": positions,
        "hidden_act": "quick_gelu",
    });
    let config: ClipTextConfig =
        serde_json::from_value(json).map_err(|e| bad(file, format!("text encoder config: {e}")))?;
    config
        .validate()
        .map_err(|e| bad(file, format!("text encoder: {e}")))?;
    Ok(config)
}

/// `cond_stage_model.transformer.text_model.` (transformers 4 names, as in real checkpoints) or
/// `cond_stage_model.transformer.` (a checkpoint converted from transformers 5 names).
fn text_prefix(file: &SafetensorsFile) -> String {
    let with = format!("{TEXT_PREFIX}text_model.");
    if has(file, &format!("{with}embeddings.token_embedding.weight")) {
        with
    } else {
        TEXT_PREFIX.to_string()
    }
}

pub fn text_remap() -> KeyRemap {
    KeyRemap::new().only(TEXT_PREFIX).extend(clip::remap())
}

fn options(remap: KeyRemap) -> LoadOptions {
    LoadOptions {
        remap,
        ..LoadOptions::default()
    }
}

pub fn load_unet(file: &SafetensorsFile, device: &Device) -> Result<LoadedUNet, WeightsError> {
    load_unet_as(file, device, FloatDType::F32)
}

/// [`load_unet`] with the weights in `dtype` on the device (as [`unet::load_files_as`]).
pub fn load_unet_as(
    file: &SafetensorsFile,
    device: &Device,
    dtype: FloatDType,
) -> Result<LoadedUNet, WeightsError> {
    let config = unet_config(file)?;
    let options = LoadOptions {
        float_dtype: Some(dtype),
        ..options(unet_remap(&config))
    };
    let (model, report) = load_module(
        unet::UNet2DConditionModel::new(&config, device),
        std::slice::from_ref(file),
        &options,
    )?;
    Ok(LoadedUNet {
        model: model.with_f32_time_embedding(),
        config,
        report,
    })
}

pub fn load_vae(file: &SafetensorsFile, device: &Device) -> Result<LoadedVae, WeightsError> {
    let config = vae_config(file)?;
    let (model, report) = load_module(
        vae::AutoencoderKL::new(&config, device),
        std::slice::from_ref(file),
        &options(vae_remap(&config)),
    )?;
    Ok(LoadedVae {
        model,
        config,
        report,
    })
}

pub fn load_text_encoder(
    file: &SafetensorsFile,
    device: &Device,
) -> Result<LoadedClip, WeightsError> {
    load_text_encoder_as(file, device, FloatDType::F32)
}

/// [`load_text_encoder`] with the weights in `dtype` on the device.
pub fn load_text_encoder_as(
    file: &SafetensorsFile,
    device: &Device,
    dtype: FloatDType,
) -> Result<LoadedClip, WeightsError> {
    let config = text_config(file)?;
    let options = LoadOptions {
        float_dtype: Some(dtype),
        ..options(text_remap())
    };
    let (model, report) = load_module(
        clip::ClipTextModel::new(&config, device),
        std::slice::from_ref(file),
        &options,
    )?;
    Ok(LoadedClip {
        model,
        config,
        report,
    })
}
