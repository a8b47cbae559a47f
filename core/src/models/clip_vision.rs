//! CLIP vision tower (transformers `CLIPVisionModel`), as Paint-by-Example's image encoder
//! uses it: non-overlapping patches embedded by a bias-free convolution, a learned class
//! token, position embeddings, a pre-LayerNorm (transformers spells it `pre_layrnorm`), the
//! same encoder layers as the text model with full (not causal) self-attention, and the
//! pooled output: the class token through `post_layernorm`.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Int, Tensor};
use serde::Deserialize;

use super::clip::ClipEncoder;
use crate::weights::KeyRemap;

/// `config.json` of a transformers `CLIPVisionModel` (unknown keys ignored). The defaults are
/// transformers' own, for files that leave them out; ViT-L/14 (Paint-by-Example, SD's image
/// variations) writes hidden 1024, intermediate 4096, 24 layers, 16 heads, patch 14.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClipVisionConfig {
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_inter")]
    pub intermediate_size: usize,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_image")]
    pub image_size: usize,
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    #[serde(default = "d_channels")]
    pub num_channels: usize,
    #[serde(default = "d_proj")]
    pub projection_dim: usize,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
}

fn d_hidden() -> usize {
    768
}
fn d_inter() -> usize {
    3072
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_image() -> usize {
    224
}
fn d_patch() -> usize {
    32
}
fn d_channels() -> usize {
    3
}
fn d_proj() -> usize {
    512
}
fn d_act() -> String {
    "quick_gelu".into()
}
fn d_eps() -> f64 {
    1e-5
}

impl ClipVisionConfig {
    /// CLIP ViT-L/14 at 224 pixels, as Paint-by-Example ships it.
    pub fn vit_l14() -> Self {
        ClipVisionConfig {
            hidden_size: 1024,
            intermediate_size: 4096,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            patch_size: 14,
            projection_dim: 768,
            ..serde_json::from_str("{}").expect("defaults")
        }
    }

    /// Patches a side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    pub fn validate(&self) -> Result<(), String> {
        use super::limits::{CHANNELS, FF, LAYERS, check, check_eps};
        check("hidden_size", self.hidden_size, 1, CHANNELS)?;
        check("intermediate_size", self.intermediate_size, 1, FF)?;
        check("num_hidden_layers", self.num_hidden_layers, 1, LAYERS)?;
        check("projection_dim", self.projection_dim, 1, CHANNELS)?;
        check("image_size", self.image_size, 1, 1024)?;
        check("patch_size", self.patch_size, 1, self.image_size)?;
        check("num_channels", self.num_channels, 3, 3)?;
        check_eps("layer_norm_eps", self.layer_norm_eps)?;
        if !self.image_size.is_multiple_of(self.patch_size) {
            return Err(format!(
                "image_size {} is not a multiple of patch_size {}",
                self.image_size, self.patch_size
            ));
        }
        if !matches!(self.hidden_act.as_str(), "quick_gelu" | "gelu") {
            return Err(format!("hidden_act '{}' is not supported", self.hidden_act));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not divisible by {} heads",
                self.hidden_size, self.num_attention_heads
            ));
        }
        Ok(())
    }
}

#[derive(Module, Debug)]
pub struct ClipVisionEmbeddings {
    pub class_embedding: Param<Tensor<1>>,
    pub patch_embedding: Conv2d,
    pub position_embedding: Embedding,
}

/// `CLIPVisionModel`, named as transformers 5 saves it (transformers 4 files put the same
/// under `vision_model.`, which [`remap`] drops).
#[derive(Module, Debug)]
pub struct ClipVisionModel {
    pub embeddings: ClipVisionEmbeddings,
    pub pre_layrnorm: LayerNorm,
    pub encoder: ClipEncoder,
    pub post_layernorm: LayerNorm,
    #[module(skip)]
    pub quick_gelu: bool,
}

impl ClipVisionModel {
    pub fn new(c: &ClipVisionConfig, device: &Device) -> Self {
        let d = c.hidden_size;
        let p = c.patch_size;
        let ln = || {
            LayerNormConfig::new(d)
                .with_epsilon(c.layer_norm_eps)
                .init(device)
        };
        let positions = c.grid() * c.grid() + 1;
        ClipVisionModel {
            embeddings: ClipVisionEmbeddings {
                class_embedding: Param::from_tensor(Tensor::zeros([d], device)),
                patch_embedding: Conv2dConfig::new([c.num_channels, d], [p, p])
                    .with_stride([p, p])
                    .with_bias(false)
                    .init(device),
                position_embedding: EmbeddingConfig::new(positions, d).init(device),
            },
            pre_layrnorm: ln(),
            encoder: ClipEncoder::new(
                c.num_hidden_layers,
                d,
                c.num_attention_heads,
                c.intermediate_size,
                c.layer_norm_eps,
                device,
            ),
            post_layernorm: ln(),
            quick_gelu: c.hidden_act == "quick_gelu",
        }
    }

    /// The pooled output `[B, D]` for normalised pixels `[B, 3, S, S]` (S = image_size).
    pub fn pooled(&self, pixels: Tensor<4>) -> Tensor<2> {
        let v = self;
        let h = v.encoder.forward(
            v.pre_layrnorm.forward(self.embed(pixels)),
            usize::MAX,
            false,
            v.quick_gelu,
        );
        let [b, _, d] = h.dims();
        v.post_layernorm
            .forward(h.slice([0..b, 0..1, 0..d]).reshape([b, d]))
    }

    /// Class token and patch embeddings plus positions, `[B, 1 + grid², D]`. The stride-p
    /// convolution is computed as the matrix product it is (patches `[B, N, 3p²]` times the
    /// kernel `[D, 3p²]`ᵀ), in the kernel's (channel, row, column) order.
    fn embed(&self, pixels: Tensor<4>) -> Tensor<3> {
        let e = &self.embeddings;
        let [d, c, p, _] = e.patch_embedding.weight.dims();
        let [b, _, s, _] = pixels.dims();
        let g = s / p;
        let patches = pixels
            .reshape([b, c, g, p, g, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([b, g * g, c * p * p]);
        let kernel = e.patch_embedding.weight.val().reshape([d, c * p * p]);
        let x = patches.matmul(kernel.transpose().unsqueeze::<3>().repeat_dim(0, b));
        let class = e.class_embedding.val().reshape([1, 1, d]).repeat_dim(0, b);
        let x = Tensor::cat(vec![class, x], 1);
        let device = x.device();
        let n = g * g + 1;
        let pos = Tensor::<1, Int>::arange(0..n as i64, &device)
            .reshape([1, n])
            .repeat_dim(0, b);
        x + e.position_embedding.forward(pos)
    }
}

/// transformers 4 names (`vision_model.` inside the model) to ours; the `position_ids` buffer
/// is dropped.
pub fn remap() -> KeyRemap {
    KeyRemap::new()
        .ignore(r"(^|\.)embeddings\.position_ids$")
        .rule(r"(^|\.)vision_model\.", "$1")
}
