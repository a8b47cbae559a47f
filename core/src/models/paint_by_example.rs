//! Paint-by-Example's image encoder (diffusers `PaintByExampleImageEncoder`): the CLIP vision
//! tower's pooled output as a one-token sequence, through the mapper (`(layers + 1) / 5`
//! single-head diffusers `BasicTransformerBlock`s with biased q/k/v, no cross-attention and a
//! plain-GELU feed-forward), a final LayerNorm and a projection to the UNet's context width.
//! Its learned `uncond_vector` `[1, 1, proj]` is the unconditional context of classifier-free
//! guidance.
//!
//! Weights load from `image_encoder/` (config.json: a `CLIPVisionConfig`; model.safetensors
//! with `model.vision_model.*`, `mapper.blocks.N.*`, `final_layer_norm.*`, `proj_out.*`,
//! `uncond_vector`).

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Tensor};

use super::attention::{merge_heads, sdpa, split_heads};
use super::clip_vision::{ClipVisionConfig, ClipVisionModel};
use crate::cpu::linear;
use crate::weights::{
    self, KeyRemap, LoadOptions, LoadReport, SafetensorsFile, WeightsError, load_module,
};

/// diffusers `Attention` with biased projections, one head as wide as the block.
#[derive(Module, Debug)]
pub struct MapperAttention {
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub to_out: Vec<Linear>,
}

/// `ff.net.0.proj` (GELU input projection) and `ff.net.2`.
#[derive(Module, Debug)]
pub struct MapperFeedForward {
    pub proj: Linear,
    pub out: Linear,
}

/// One mapper block: `x + attn1(norm1(x))`, then `x + ff(norm3(x))`.
#[derive(Module, Debug)]
pub struct MapperBlock {
    pub norm1: LayerNorm,
    pub attn1: MapperAttention,
    pub norm3: LayerNorm,
    pub ff: MapperFeedForward,
}

#[derive(Module, Debug)]
pub struct Mapper {
    pub blocks: Vec<MapperBlock>,
}

#[derive(Module, Debug)]
pub struct PaintByExampleImageEncoder {
    pub model: ClipVisionModel,
    /// `mapper.*` in the files (burn's derive reserves the name `mapper`).
    pub example_mapper: Mapper,
    pub final_layer_norm: LayerNorm,
    pub proj_out: Linear,
    pub uncond_vector: Param<Tensor<3>>,
}

impl MapperBlock {
    fn new(d: usize, device: &Device) -> Self {
        let ln = || LayerNormConfig::new(d).init(device);
        let lin = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        MapperBlock {
            norm1: ln(),
            attn1: MapperAttention {
                to_q: lin(d, d),
                to_k: lin(d, d),
                to_v: lin(d, d),
                to_out: vec![lin(d, d)],
            },
            norm3: ln(),
            ff: MapperFeedForward {
                proj: lin(d, 4 * d),
                out: lin(4 * d, d),
            },
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let a = &self.attn1;
        let h = self.norm1.forward(x.clone());
        let q = split_heads(linear(&a.to_q, h.clone()), 1);
        let k = split_heads(linear(&a.to_k, h.clone()), 1);
        let v = split_heads(linear(&a.to_v, h), 1);
        let x = x + linear(&a.to_out[0], merge_heads(sdpa(q, k, v, false)));
        let h = gelu(linear(&self.ff.proj, self.norm3.forward(x.clone())));
        x + linear(&self.ff.out, h)
    }
}

impl PaintByExampleImageEncoder {
    pub fn new(c: &ClipVisionConfig, device: &Device) -> Self {
        let d = c.hidden_size;
        PaintByExampleImageEncoder {
            model: ClipVisionModel::new(c, device),
            example_mapper: Mapper {
                blocks: (0..(c.num_hidden_layers + 1) / 5)
                    .map(|_| MapperBlock::new(d, device))
                    .collect(),
            },
            final_layer_norm: LayerNormConfig::new(d).init(device),
            proj_out: LinearConfig::new(d, c.projection_dim).init(device),
            uncond_vector: Param::from_tensor(Tensor::zeros([1, 1, c.projection_dim], device)),
        }
    }

    /// The image embedding `[B, 1, proj]` for CLIP-normalised pixels `[B, 3, S, S]`.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let mut x = self.model.pooled(pixels).unsqueeze_dim::<3>(1);
        for block in &self.example_mapper.blocks {
            x = block.forward(x);
        }
        linear(&self.proj_out, self.final_layer_norm.forward(x))
    }

    /// The unconditional context `[1, 1, proj]`.
    pub fn uncond(&self) -> Tensor<3> {
        self.uncond_vector.val()
    }

    /// The width of the embedding (the UNet's `cross_attention_dim`).
    pub fn projection_dim(&self) -> usize {
        self.proj_out.weight.dims()[1]
    }
}

/// diffusers names whose module path differs from ours (`mapper.`, the feed-forward's
/// numbering), and the vision tower's transformers 4 names.
pub fn remap() -> KeyRemap {
    super::clip_vision::remap()
        .rule(r"^mapper\.", "example_mapper.")
        .rule(r"\.ff\.net\.0\.proj\.", ".ff.proj.")
        .rule(r"\.ff\.net\.2\.", ".ff.out.")
}

/// A loaded image encoder.
pub struct LoadedImageEncoder {
    pub model: PaintByExampleImageEncoder,
    pub config: ClipVisionConfig,
    pub report: LoadReport,
}

/// Loads from a diffusers `image_encoder/` folder.
pub fn load_folder(
    dir: impl AsRef<Path>,
    device: &Device,
) -> Result<LoadedImageEncoder, WeightsError> {
    let comp = weights::component_files(&dir)?;
    let config = comp.validated_config(ClipVisionConfig::validate)?;
    load_files(&comp.open()?, config, device)
}

/// Loads weights into an encoder built from `config`.
pub fn load_files(
    files: &[SafetensorsFile],
    config: ClipVisionConfig,
    device: &Device,
) -> Result<LoadedImageEncoder, WeightsError> {
    let options = LoadOptions {
        remap: remap(),
        ..LoadOptions::default()
    };
    let model = PaintByExampleImageEncoder::new(&config, device);
    let (model, report) = load_module(model, files, &options)?;
    Ok(LoadedImageEncoder {
        model,
        config,
        report,
    })
}
