//! The SD 1.x VAE (diffusers `AutoencoderKL`) and the asymmetric VAE
//! (`AsymmetricAutoencoderKL`, whose decoder is a [`MaskConditionEncoder`]-conditioned
//! `MaskConditionDecoder`). One set of blocks serves both; field names mirror diffusers'
//! state-dict names, so diffusers folders load without remapping.
//!
//! Facts that matter for parity: GroupNorm eps 1e-6, SiLU; the encoder's downsampler pads
//! (0, 1, 0, 1) then convolves with stride 2 and no padding; the decoder's upsampler is nearest
//! x2 then a 3x3 conv; the mid-block attention is single-head over all pixels with a residual;
//! the posterior's log-variance is clamped to [-30, 20].

mod blocks;
mod config;
mod decoder;
mod encoder;
mod posterior;
mod tiling;

pub use blocks::{
    DownEncoderBlock2D, Downsample2D, ResnetBlock2D, UNetMidBlock2D, UpDecoderBlock2D, Upsample2D,
    VaeAttention, upsample_nearest2,
};
pub use config::{VaeConfig, VaeConfigJson};
pub use decoder::{Decoder, downsample_mask};
pub use encoder::Encoder;
pub use posterior::DiagonalGaussian;
pub use tiling::{Decoded, Tiling, all_finite, tiled_map};

use std::path::Path;

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::{DType, Device, FloatDType, Tensor};

use crate::cpu::conv2d;
use crate::precision::{as_dtype, cast_module};
use blocks::conv;

use crate::weights::{
    self, KeyRemap, LoadOptions, LoadReport, SafetensorsFile, WeightsError, load_module,
};

/// `AutoencoderKL` / `AsymmetricAutoencoderKL`.
#[derive(Module, Debug)]
pub struct AutoencoderKL {
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub quant_conv: Option<Conv2d>,
    pub post_quant_conv: Option<Conv2d>,
}

impl AutoencoderKL {
    pub fn new(c: &VaeConfig, device: &Device) -> Self {
        AutoencoderKL {
            encoder: Encoder::new(c, device),
            decoder: Decoder::new(c, device),
            quant_conv: c
                .use_quant_conv
                .then(|| conv(2 * c.latent_channels, 2 * c.latent_channels, 1, device)),
            post_quant_conv: c
                .use_post_quant_conv
                .then(|| conv(c.latent_channels, c.latent_channels, 1, device)),
        }
    }

    /// The posterior for images `x` (`[B, 3, H, W]` in [-1, 1], H and W multiples of 8).
    pub fn encode(&self, x: Tensor<4>) -> DiagonalGaussian {
        let mut h = self.encoder.forward(x);
        if let Some(q) = &self.quant_conv {
            h = conv2d(q, h);
        }
        let c = h.dims()[1] / 2;
        let mut parts = h.chunk(2, 1);
        let logvar = parts.pop().expect("two chunks").clamp(-30.0, 20.0);
        let mean = parts.pop().expect("two chunks");
        debug_assert_eq!(mean.dims()[1], c);
        DiagonalGaussian { mean, logvar }
    }

    /// Decodes latents `z` (unscaled, i.e. already divided by the scaling factor). With
    /// `condition = (image, mask)` (image in [-1, 1], mask 1 = repaint, both at the output
    /// size) the asymmetric decoder keeps the unmasked image's features; a standard VAE
    /// ignores the condition.
    /// In the decoder's precision ([`Self::with_decoder_dtype`]); inputs of another float type
    /// are cast to it, and the result is f32.
    pub fn decode(&self, z: Tensor<4>, condition: Option<(Tensor<4>, Tensor<4>)>) -> Tensor<4> {
        let dtype = crate::precision::activation_dtype(self.decoder_dtype());
        let z = as_dtype(z, dtype);
        let condition = condition.map(|(i, m)| (as_dtype(i, dtype), as_dtype(m, dtype)));
        let z = match &self.post_quant_conv {
            Some(p) => conv2d(p, z),
            None => z,
        };
        as_dtype(self.decoder.forward(z, condition), DType::F32)
    }

    /// The float type the decoder computes in.
    pub fn decoder_dtype(&self) -> DType {
        self.decoder.conv_in.weight.val().dtype()
    }

    /// This VAE with its decoder (and post-quant conv) in `dtype`; the encoder is unchanged.
    pub fn with_decoder_dtype(mut self, dtype: FloatDType) -> Self {
        self.decoder = cast_module(self.decoder, dtype);
        self.post_quant_conv = self.post_quant_conv.map(|p| cast_module(p, dtype));
        self
    }

    pub fn is_asymmetric(&self) -> bool {
        self.decoder.condition_encoder.is_some()
    }
}

/// Key rewrites that bring other VAE layouts to diffusers' current names:
/// legacy attention names (`query/key/value/proj_attn`, sometimes 1x1-conv shaped: the loader
/// accepts `[C, C, 1, 1]` for a Linear).
pub fn legacy_attention_remap() -> KeyRemap {
    KeyRemap::new()
        .rule(r"\.attentions\.(\d+)\.query\.", ".attentions.$1.to_q.")
        .rule(r"\.attentions\.(\d+)\.key\.", ".attentions.$1.to_k.")
        .rule(r"\.attentions\.(\d+)\.value\.", ".attentions.$1.to_v.")
        .rule(
            r"\.attentions\.(\d+)\.proj_attn\.",
            ".attentions.$1.to_out.0.",
        )
}

/// The original Asymmetric_VQGAN / LDM checkpoint layout (`encoder.down.N.block.M`,
/// `decoder.up.N` in reverse order, `mid.block_1`, `attn_1.q`, `nin_shortcut`,
/// `decoder.encoder.*` for the condition encoder); training-only `decoder.up_layers.*` and
/// `loss.*` are ignored.
pub fn original_layout_remap(up_blocks: usize) -> KeyRemap {
    let mut r = KeyRemap::new()
        .ignore(r"^loss\.")
        .ignore(r"^decoder\.up_layers\.")
        .rule(r"^encoder\.down\.(\d+)\.", "encoder.down_blocks.$1.")
        .rule(r"^(encoder|decoder)\.mid\.", "$1.mid_block.")
        .rule(r"^(encoder|decoder)\.norm_out\.", "$1.conv_norm_out.")
        .rule(r"^decoder\.encoder\.", "decoder.condition_encoder.");
    for i in 0..up_blocks {
        r = r.rule(
            &format!(r"^decoder\.up\.{i}\."),
            &format!("decoder.up_blocks.{}.", up_blocks - 1 - i),
        );
    }
    r.rule(r"\.downsample\.", ".downsamplers.0.")
        .rule(r"\.upsample\.", ".upsamplers.0.")
        .rule(r"\.nin_shortcut\.", ".conv_shortcut.")
        .rule(r"\.block_1\.", ".resnets.0.")
        .rule(r"\.block_2\.", ".resnets.1.")
        .rule(r"\.block\.", ".resnets.")
        .rule(r"\.attn_1\.q\.", ".attentions.0.to_q.")
        .rule(r"\.attn_1\.k\.", ".attentions.0.to_k.")
        .rule(r"\.attn_1\.v\.", ".attentions.0.to_v.")
        .rule(r"\.attn_1\.proj_out\.", ".attentions.0.to_out.0.")
        .rule(r"\.attn_1\.norm\.", ".attentions.0.group_norm.")
}

/// Picks the remap for a file by its keys: diffusers (current or legacy attention names) or
/// the original LDM / Asymmetric_VQGAN layout.
pub fn remap_for(files: &[SafetensorsFile], config: &VaeConfig) -> KeyRemap {
    let original = files.iter().any(|f| {
        f.keys()
            .any(|k| k.starts_with("encoder.down.") || k.starts_with("decoder.up."))
    });
    if original {
        original_layout_remap(config.up_channels.len())
    } else {
        legacy_attention_remap()
    }
}

/// A VAE and what its load did.
pub struct LoadedVae {
    pub model: AutoencoderKL,
    pub config: VaeConfig,
    pub report: LoadReport,
}

/// Loads a VAE from a diffusers component folder (`vae/` with `config.json`).
pub fn load_folder(dir: impl AsRef<Path>, device: &Device) -> Result<LoadedVae, WeightsError> {
    let comp = weights::component_files(&dir)?;
    let json: VaeConfigJson = comp.config()?;
    let config = VaeConfig::from_json(&json).map_err(|problem| WeightsError::BadConfig {
        path: comp.config.clone(),
        problem,
    })?;
    let files = comp.open()?;
    load_files(&files, config, device)
}

/// Loads VAE weights (any supported key layout) into a model built from `config`.
pub fn load_files(
    files: &[SafetensorsFile],
    config: VaeConfig,
    device: &Device,
) -> Result<LoadedVae, WeightsError> {
    let options = LoadOptions {
        remap: remap_for(files, &config),
        ..LoadOptions::default()
    };
    let (model, report) = load_module(AutoencoderKL::new(&config, device), files, &options)?;
    Ok(LoadedVae {
        model,
        config,
        report,
    })
}
