//! CLIP text encoder (transformers `CLIPTextModel`) as SD 1.x uses it: token + position
//! embeddings, pre-LayerNorm encoder layers with causal self-attention and quick-GELU MLPs, a
//! final LayerNorm; the output is the last hidden state `[B, 77, 768]`.
//!
//! Weights load from `text_encoder/model.safetensors` with transformers 5 names
//! (`embeddings.*`, `encoder.layers.N.*`) or transformers 4 names (the same under
//! `text_model.`, plus a `position_ids` buffer that is ignored).

use std::path::Path;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::{DType, Device, FloatDType, Int, Tensor, TensorData};
use serde::Deserialize;

use super::attention::{merge_heads, sdpa, split_heads};
use crate::cpu::{layer_norm, linear};
use crate::precision::as_dtype;
use crate::weights::{
    self, KeyRemap, LoadOptions, LoadReport, SafetensorsFile, WeightsError, load_module,
};

/// `config.json` of a transformers `CLIPTextModel` (unknown keys ignored).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClipTextConfig {
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_inter")]
    pub intermediate_size: usize,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
}

fn d_vocab() -> usize {
    49408
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
fn d_pos() -> usize {
    77
}
fn d_act() -> String {
    "quick_gelu".into()
}
fn d_eps() -> f64 {
    1e-5
}

impl ClipTextConfig {
    /// SD 1.x's text encoder (CLIP ViT-L/14).
    pub fn sd1() -> Self {
        serde_json::from_str("{}").expect("defaults")
    }

    pub fn validate(&self) -> Result<(), String> {
        use super::limits::{CHANNELS, FF, LAYERS, POSITIONS, VOCAB, check, check_eps};
        check("vocab_size", self.vocab_size, 1, VOCAB)?;
        check("hidden_size", self.hidden_size, 1, CHANNELS)?;
        check("intermediate_size", self.intermediate_size, 1, FF)?;
        check("num_hidden_layers", self.num_hidden_layers, 1, LAYERS)?;
        check(
            "max_position_embeddings",
            self.max_position_embeddings,
            1,
            POSITIONS,
        )?;
        check_eps("layer_norm_eps", self.layer_norm_eps)?;
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
pub struct ClipEmbeddings {
    pub token_embedding: Embedding,
    pub position_embedding: Embedding,
}

#[derive(Module, Debug)]
pub struct ClipAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    #[module(skip)]
    pub heads: usize,
}

#[derive(Module, Debug)]
pub struct ClipMlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

#[derive(Module, Debug)]
pub struct ClipEncoderLayer {
    pub layer_norm1: LayerNorm,
    pub self_attn: ClipAttention,
    pub layer_norm2: LayerNorm,
    pub mlp: ClipMlp,
}

#[derive(Module, Debug)]
pub struct ClipEncoder {
    pub layers: Vec<ClipEncoderLayer>,
}

impl ClipEncoder {
    /// The first `n` pre-LayerNorm layers on `x` `[B, T, D]` (causal self-attention for the
    /// text encoder, full for the vision tower).
    pub fn forward(&self, mut x: Tensor<3>, n: usize, causal: bool, quick_gelu: bool) -> Tensor<3> {
        for layer in &self.layers[..n.min(self.layers.len())] {
            let r = x.clone();
            let h = layer_norm(&layer.layer_norm1, x);
            let a = &layer.self_attn;
            let q = split_heads(linear(&a.q_proj, h.clone()), a.heads);
            let k = split_heads(linear(&a.k_proj, h.clone()), a.heads);
            let v = split_heads(linear(&a.v_proj, h), a.heads);
            let o = linear(&a.out_proj, merge_heads(sdpa(q, k, v, causal)));
            x = r + o;
            let r = x.clone();
            let h = linear(&layer.mlp.fc1, layer_norm(&layer.layer_norm2, x));
            let h = if quick_gelu {
                h.clone() * sigmoid(h * 1.702)
            } else {
                gelu(h)
            };
            x = r + linear(&layer.mlp.fc2, h);
        }
        x
    }

    /// `n` layers of width `d` (`heads` heads, MLP width `inter`).
    pub fn new(n: usize, d: usize, heads: usize, inter: usize, eps: f64, device: &Device) -> Self {
        let ln = || LayerNormConfig::new(d).with_epsilon(eps).init(device);
        let lin = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        ClipEncoder {
            layers: (0..n)
                .map(|_| ClipEncoderLayer {
                    layer_norm1: ln(),
                    self_attn: ClipAttention {
                        q_proj: lin(d, d),
                        k_proj: lin(d, d),
                        v_proj: lin(d, d),
                        out_proj: lin(d, d),
                        heads,
                    },
                    layer_norm2: ln(),
                    mlp: ClipMlp {
                        fc1: lin(d, inter),
                        fc2: lin(inter, d),
                    },
                })
                .collect(),
        }
    }
}

#[derive(Module, Debug)]
pub struct ClipTextModel {
    pub embeddings: ClipEmbeddings,
    pub encoder: ClipEncoder,
    pub final_layer_norm: LayerNorm,
    #[module(skip)]
    pub quick_gelu: bool,
}

impl ClipTextModel {
    pub fn new(c: &ClipTextConfig, device: &Device) -> Self {
        let d = c.hidden_size;
        let ln = || {
            LayerNormConfig::new(d)
                .with_epsilon(c.layer_norm_eps)
                .init(device)
        };
        ClipTextModel {
            embeddings: ClipEmbeddings {
                token_embedding: EmbeddingConfig::new(c.vocab_size, d).init(device),
                position_embedding: EmbeddingConfig::new(c.max_position_embeddings, d).init(device),
            },
            encoder: ClipEncoder::new(
                c.num_hidden_layers,
                d,
                c.num_attention_heads,
                c.intermediate_size,
                c.layer_norm_eps,
                device,
            ),
            final_layer_norm: ln(),
            quick_gelu: c.hidden_act == "quick_gelu",
        }
    }

    /// The width of the token embeddings (and of a textual-inversion vector).
    pub fn hidden_size(&self) -> usize {
        self.embeddings.token_embedding.weight.dims()[1]
    }

    /// The last hidden state for token ids `[B, T]` (T ≤ max_position_embeddings).
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.forward_hidden(ids, 0)
    }

    /// The hidden state `skip` layers before the last, through the final LayerNorm
    /// ("CLIP skip"; 0 = the last hidden state).
    pub fn forward_hidden(&self, ids: Tensor<2, Int>, skip: usize) -> Tensor<3> {
        self.forward_tokens(self.token_embeddings(ids), skip)
    }

    /// The token embeddings `[B, T, D]` of ids `[B, T]` (before the position embedding): where
    /// textual-inversion vectors replace rows. Always f32, whatever the model's precision.
    pub fn token_embeddings(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        as_dtype(self.embeddings.token_embedding.forward(ids), DType::F32)
    }

    /// [`forward_hidden`](Self::forward_hidden) from token embeddings `[B, T, D]`, in the
    /// model's precision (see [`load_files_as`]); the result is f32.
    pub fn forward_tokens(&self, tokens: Tensor<3>, skip: usize) -> Tensor<3> {
        let [b, t, _] = tokens.dims();
        let device = tokens.device();
        let pos: Tensor<2, Int> = Tensor::<1, Int>::arange(0..t as i64, &device)
            .reshape([1, t])
            .repeat_dim(0, b);
        let dtype = crate::precision::activation_dtype(self.dtype());
        let tokens = as_dtype(tokens, dtype);
        let x = tokens + as_dtype(self.embeddings.position_embedding.forward(pos), dtype);
        let n = self.encoder.layers.len().saturating_sub(skip);
        let x = self.encoder.forward(x, n, true, self.quick_gelu);
        as_dtype(layer_norm(&self.final_layer_norm, x), DType::F32)
    }

    /// The float type the model computes in.
    pub fn dtype(&self) -> DType {
        self.embeddings.token_embedding.weight.val().dtype()
    }
}

/// transformers 4 names (`text_model.` prefix) to ours; the `position_ids` buffer is dropped.
pub fn remap() -> KeyRemap {
    KeyRemap::new()
        .ignore(r"(^|\.)embeddings\.position_ids$")
        .rule(r"^text_model\.", "")
}

/// Token ids on a device.
pub fn ids_tensor(ids: &[Vec<u32>], device: &Device) -> Tensor<2, Int> {
    let b = ids.len();
    let t = ids.first().map(Vec::len).unwrap_or(0);
    let flat: Vec<i64> = ids.iter().flatten().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(flat, [b, t]), device)
}

/// A loaded text encoder.
pub struct LoadedClip {
    pub model: ClipTextModel,
    pub config: ClipTextConfig,
    pub report: LoadReport,
}

/// Loads from a transformers folder (`text_encoder/`: config.json + model.safetensors).
pub fn load_folder(dir: impl AsRef<Path>, device: &Device) -> Result<LoadedClip, WeightsError> {
    load_folder_as(dir, device, FloatDType::F32)
}

/// [`load_folder`] with the weights in `dtype` on the device.
pub fn load_folder_as(
    dir: impl AsRef<Path>,
    device: &Device,
    dtype: FloatDType,
) -> Result<LoadedClip, WeightsError> {
    let comp = weights::component_files(&dir)?;
    let config = comp.validated_config(ClipTextConfig::validate)?;
    load_files_as(&comp.open()?, config, device, dtype)
}

/// Loads weights (either naming) into a model built from `config`.
pub fn load_files(
    files: &[SafetensorsFile],
    config: ClipTextConfig,
    device: &Device,
) -> Result<LoadedClip, WeightsError> {
    load_files_as(files, config, device, FloatDType::F32)
}

/// [`load_files`] with the weights converted to `dtype` on the host (in f16 the LayerNorm
/// statistics, products and softmax are still computed in f32; see `crate::cpu::half`).
pub fn load_files_as(
    files: &[SafetensorsFile],
    config: ClipTextConfig,
    device: &Device,
    dtype: FloatDType,
) -> Result<LoadedClip, WeightsError> {
    let options = LoadOptions {
        remap: remap(),
        float_dtype: Some(dtype),
        ..LoadOptions::default()
    };
    let (model, report) = load_module(ClipTextModel::new(&config, device), files, &options)?;
    Ok(LoadedClip {
        model,
        config,
        report,
    })
}
