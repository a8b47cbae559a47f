//! diffusers `UNet2DConditionModel` for SD 1.x (and SD 2.x-style linear projections):
//! sinusoidal timestep embedding, down / mid / up blocks of ResNet blocks (with the time
//! embedding) and Transformer2D blocks (self-attention, cross-attention to the text, GEGLU
//! feed-forward), skip connections; 4 input channels (text-to-image / local editing) or 9
//! (inpainting: noisy latents, mask, masked-image latents). Config-driven from `config.json`;
//! field names mirror diffusers, so `unet/` folders load without remapping.

use crate::kernels::group_norm_silu_expect as gn_silu;
use std::path::Path;

use crate::cpu::{conv2d, layer_norm, linear};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    GroupNorm, GroupNormConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::activation::{gelu, silu};
use burn::tensor::{DType, Device, FloatDType, Tensor, TensorData};

use crate::precision::{as_dtype, cast_module};
use serde::Deserialize;

use super::attention::{merge_heads, sdpa, split_heads};
use super::vae::upsample_nearest2;
use crate::weights::{
    self, KeyRemap, LoadOptions, LoadReport, SafetensorsFile, WeightsError, load_module,
};

/// A number or one per block (diffusers accepts both for head settings).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PerBlock {
    One(usize),
    Each(Vec<usize>),
}

impl PerBlock {
    fn get(&self, i: usize) -> usize {
        match self {
            PerBlock::One(v) => *v,
            PerBlock::Each(v) => v[i.min(v.len() - 1)],
        }
    }
}

/// `config.json` of a diffusers `UNet2DConditionModel` (fields SD 1.x / 2.x use).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct UNetConfig {
    #[serde(default = "four")]
    pub in_channels: usize,
    #[serde(default = "four")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    #[serde(default = "two")]
    pub layers_per_block: usize,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    #[serde(default = "heads8")]
    pub attention_head_dim: PerBlock,
    #[serde(default)]
    pub num_attention_heads: Option<PerBlock>,
    pub cross_attention_dim: usize,
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    #[serde(default = "eps5")]
    pub norm_eps: f64,
    #[serde(default)]
    pub use_linear_projection: bool,
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f64,
    #[serde(default)]
    pub act_fn: Option<String>,
    #[serde(default)]
    pub mid_block_type: Option<String>,
    #[serde(default)]
    pub transformer_layers_per_block: Option<PerBlock>,
    #[serde(default)]
    pub center_input_sample: bool,
    #[serde(default)]
    pub only_cross_attention: Option<serde_json::Value>,
    #[serde(default)]
    pub class_embed_type: Option<String>,
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    #[serde(default)]
    pub resnet_time_scale_shift: Option<String>,
    /// The latent side the model was trained at (64 for SD 1.x: 512 pixels).
    #[serde(default)]
    pub sample_size: Option<PerBlock>,
}

fn four() -> usize {
    4
}
fn two() -> usize {
    2
}
fn heads8() -> PerBlock {
    PerBlock::One(8)
}
fn thirty_two() -> usize {
    32
}
fn eps5() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

impl UNetConfig {
    /// The pixel side the model was trained at (`sample_size` x 8; 512 when the config has
    /// none).
    pub fn trained_pixels(&self) -> u32 {
        let s = match &self.sample_size {
            Some(PerBlock::One(v)) => *v,
            Some(PerBlock::Each(v)) => v.iter().copied().max().unwrap_or(64),
            None => 64,
        };
        (s.clamp(1, 1024) * 8) as u32
    }

    /// Heads of block `i` (diffusers: `num_attention_heads or attention_head_dim`, a naming
    /// quirk of SD 1.x configs where "attention_head_dim: 8" means 8 heads).
    pub fn heads(&self, i: usize) -> usize {
        self.num_attention_heads
            .as_ref()
            .unwrap_or(&self.attention_head_dim)
            .get(i)
    }

    /// What this implementation does not cover, in words.
    pub fn validate(&self) -> Result<(), String> {
        use super::limits::{self, CHANNELS, IO_CHANNELS, LAYERS, check};
        check("in_channels", self.in_channels, 1, IO_CHANNELS)?;
        check("out_channels", self.out_channels, 1, IO_CHANNELS)?;
        limits::check_all("block_out_channels", &self.block_out_channels, 1, CHANNELS)?;
        check("layers_per_block", self.layers_per_block, 1, LAYERS)?;
        check("cross_attention_dim", self.cross_attention_dim, 1, CHANNELS)?;
        check("norm_num_groups", self.norm_num_groups, 1, CHANNELS)?;
        limits::check_eps("norm_eps", self.norm_eps)?;
        let n = self.block_out_channels.len();
        if n == 0 || self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(
                "block_out_channels, down_block_types and up_block_types differ in length".into(),
            );
        }
        for t in &self.down_block_types {
            if t != "CrossAttnDownBlock2D" && t != "DownBlock2D" {
                return Err(format!("down block type '{t}' is not supported"));
            }
        }
        for t in &self.up_block_types {
            if t != "CrossAttnUpBlock2D" && t != "UpBlock2D" {
                return Err(format!("up block type '{t}' is not supported"));
            }
        }
        if let Some(m) = &self.mid_block_type
            && m != "UNetMidBlock2DCrossAttn"
        {
            return Err(format!("mid block type '{m}' is not supported"));
        }
        if let Some(a) = &self.act_fn
            && a != "silu"
        {
            return Err(format!("act_fn '{a}' is not supported"));
        }
        match &self.transformer_layers_per_block {
            None | Some(PerBlock::One(1)) => {}
            Some(PerBlock::Each(v)) if v.iter().all(|&x| x == 1) => {}
            Some(_) => {
                return Err("transformer_layers_per_block other than 1 is not supported".into());
            }
        }
        if self.class_embed_type.is_some() || self.addition_embed_type.is_some() {
            return Err("class / addition embeddings (SDXL and variants) are not supported".into());
        }
        if matches!(
            &self.only_cross_attention,
            Some(serde_json::Value::Bool(true))
        ) {
            return Err("only_cross_attention is not supported".into());
        }
        if let Some(s) = &self.resnet_time_scale_shift
            && s != "default"
        {
            return Err(format!("resnet_time_scale_shift '{s}' is not supported"));
        }
        for (i, &c) in self.block_out_channels.iter().enumerate() {
            if c % self.norm_num_groups != 0 {
                return Err(format!(
                    "{c} channels are not divisible into {} groups",
                    self.norm_num_groups
                ));
            }
            check("attention heads", self.heads(i), 1, c)?;
            if c % self.heads(i) != 0 {
                return Err(format!(
                    "{c} channels are not divisible into {} heads",
                    self.heads(i)
                ));
            }
        }
        Ok(())
    }
}

fn conv(cin: usize, cout: usize, k: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .init(device)
}

fn gn(groups: usize, c: usize, eps: f64, device: &Device) -> GroupNorm {
    GroupNormConfig::new(groups, c)
        .with_epsilon(eps)
        .init(device)
}

fn lin(i: usize, o: usize, bias: bool, device: &Device) -> Linear {
    LinearConfig::new(i, o).with_bias(bias).init(device)
}

#[derive(Module, Debug)]
pub struct TimestepEmbedding {
    pub linear_1: Linear,
    pub linear_2: Linear,
}

/// ResNet block with the time embedding added after the first conv.
#[derive(Module, Debug)]
pub struct ResnetBlock {
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    pub time_emb_proj: Linear,
    pub norm2: GroupNorm,
    pub conv2: Conv2d,
    pub conv_shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    fn new(cin: usize, cout: usize, temb: usize, c: &UNetConfig, device: &Device) -> Self {
        let g = c.norm_num_groups;
        ResnetBlock {
            norm1: gn(g, cin, c.norm_eps, device),
            conv1: conv(cin, cout, 3, device),
            time_emb_proj: lin(temb, cout, true, device),
            norm2: gn(g, cout, c.norm_eps, device),
            conv2: conv(cout, cout, 3, device),
            conv_shortcut: (cin != cout).then(|| conv(cin, cout, 1, device)),
        }
    }

    fn forward(&self, x: Tensor<4>, temb_act: &Tensor<2>) -> Tensor<4> {
        let h = conv2d(&self.conv1, gn_silu(x.clone(), &self.norm1));
        let [b, c] = [h.dims()[0], h.dims()[1]];
        let half = |t: DType| crate::precision::is_half(t);
        let t = if half(h.dtype()) || half(self.time_emb_proj.weight.val().dtype()) {
            linear(&self.time_emb_proj, as_dtype(temb_act.clone(), h.dtype()))
        } else {
            self.time_emb_proj.forward(temb_act.clone())
        };
        let t = t.reshape([b, c, 1, 1]);
        let h = conv2d(&self.conv2, gn_silu(h + t, &self.norm2));
        let s = match &self.conv_shortcut {
            Some(sc) => conv2d(sc, x),
            None => x,
        };
        s + h
    }
}

/// diffusers `Attention` as used by `BasicTransformerBlock` (no q/k/v bias).
#[derive(Module, Debug)]
pub struct CrossAttention {
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub to_out: Vec<Linear>,
    #[module(skip)]
    pub heads: usize,
}

impl CrossAttention {
    fn new(dim: usize, context_dim: usize, heads: usize, device: &Device) -> Self {
        CrossAttention {
            to_q: lin(dim, dim, false, device),
            to_k: lin(context_dim, dim, false, device),
            to_v: lin(context_dim, dim, false, device),
            to_out: vec![lin(dim, dim, true, device)],
            heads,
        }
    }

    fn forward(&self, x: Tensor<3>, context: Option<&Tensor<3>>) -> Tensor<3> {
        let ctx = context.cloned().unwrap_or_else(|| x.clone());
        let q = split_heads(linear(&self.to_q, x), self.heads);
        let k = split_heads(linear(&self.to_k, ctx.clone()), self.heads);
        let v = split_heads(linear(&self.to_v, ctx), self.heads);
        linear(&self.to_out[0], merge_heads(sdpa(q, k, v, false)))
    }
}

/// GEGLU: `proj(x)` split in two halves, `hidden * gelu(gate)`.
#[derive(Module, Debug)]
pub struct Geglu {
    pub proj: Linear,
}

/// `net.0` (GEGLU) and `net.2` (Linear), as diffusers' `FeedForward` numbers them.
#[derive(Module, Debug)]
pub struct FeedForward {
    pub net: FeedForwardNet,
}

#[derive(Module, Debug)]
pub struct FeedForwardNet {
    #[module(skip)]
    pub inner: usize,
    pub geglu: Geglu,
    pub out: Linear,
}

impl FeedForward {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = linear(&self.net.geglu.proj, x);
        if let Some(act) = crate::cpu::geglu(&h) {
            return linear(&self.net.out, act);
        }
        let mut parts = h.chunk(2, 2);
        let gate = parts.pop().expect("two halves");
        let hidden = parts.pop().expect("two halves");
        self.net.out.forward(hidden * gelu(gate))
    }
}

#[derive(Module, Debug)]
pub struct BasicTransformerBlock {
    pub norm1: LayerNorm,
    pub attn1: CrossAttention,
    pub norm2: LayerNorm,
    pub attn2: CrossAttention,
    pub norm3: LayerNorm,
    pub ff: FeedForward,
}

/// `proj_in` / `proj_out`: a 1x1 conv (SD 1.x) or a Linear (SD 2.x).
#[derive(Module, Debug)]
pub enum Projection {
    Conv(Conv2d),
    Linear(Linear),
}

#[derive(Module, Debug)]
pub struct Transformer2D {
    pub norm: GroupNorm,
    pub proj_in: Projection,
    pub transformer_blocks: Vec<BasicTransformerBlock>,
    pub proj_out: Projection,
}

impl Transformer2D {
    fn new(c: usize, heads: usize, cfg: &UNetConfig, device: &Device) -> Self {
        let proj = || {
            if cfg.use_linear_projection {
                Projection::Linear(lin(c, c, true, device))
            } else {
                Projection::Conv(conv(c, c, 1, device))
            }
        };
        let ln = || LayerNormConfig::new(c).with_epsilon(1e-5).init(device);
        Transformer2D {
            norm: gn(cfg.norm_num_groups, c, 1e-6, device),
            proj_in: proj(),
            transformer_blocks: vec![BasicTransformerBlock {
                norm1: ln(),
                attn1: CrossAttention::new(c, c, heads, device),
                norm2: ln(),
                attn2: CrossAttention::new(c, cfg.cross_attention_dim, heads, device),
                norm3: ln(),
                ff: FeedForward {
                    net: FeedForwardNet {
                        inner: 4 * c,
                        geglu: Geglu {
                            proj: lin(c, 8 * c, true, device),
                        },
                        out: lin(4 * c, c, true, device),
                    },
                },
            }],
            proj_out: proj(),
        }
    }

    fn forward(&self, x: Tensor<4>, context: &Tensor<3>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let residual = x.clone();
        let n = crate::kernels::group_norm_expect(x, &self.norm);
        let to_seq = |t: Tensor<4>| t.reshape([b, c, h * w]).swap_dims(1, 2);
        let mut s = match &self.proj_in {
            Projection::Conv(p) => to_seq(conv2d(p, n)),
            Projection::Linear(p) => linear(p, to_seq(n)),
        };
        for blk in &self.transformer_blocks {
            s = blk.attn1.forward(layer_norm(&blk.norm1, s.clone()), None) + s;
            s = blk
                .attn2
                .forward(layer_norm(&blk.norm2, s.clone()), Some(context))
                + s;
            s = blk.ff.forward(layer_norm(&blk.norm3, s.clone())) + s;
        }
        let to_img = |t: Tensor<3>| t.swap_dims(1, 2).reshape([b, c, h, w]);
        let out = match &self.proj_out {
            Projection::Conv(p) => conv2d(p, to_img(s)),
            Projection::Linear(p) => to_img(linear(p, s)),
        };
        out + residual
    }
}

#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
}

#[derive(Module, Debug)]
pub struct Upsample {
    pub conv: Conv2d,
}

#[derive(Module, Debug)]
pub struct DownBlock {
    pub resnets: Vec<ResnetBlock>,
    pub attentions: Vec<Transformer2D>,
    pub downsamplers: Vec<Downsample>,
}

#[derive(Module, Debug)]
pub struct UpBlock {
    pub resnets: Vec<ResnetBlock>,
    pub attentions: Vec<Transformer2D>,
    pub upsamplers: Vec<Upsample>,
}

#[derive(Module, Debug)]
pub struct MidBlock {
    pub resnets: Vec<ResnetBlock>,
    pub attentions: Vec<Transformer2D>,
}

#[derive(Module, Debug)]
pub struct UNet2DConditionModel {
    pub conv_in: Conv2d,
    pub time_embedding: TimestepEmbedding,
    pub down_blocks: Vec<DownBlock>,
    pub mid_block: MidBlock,
    pub up_blocks: Vec<UpBlock>,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
    #[module(skip)]
    pub time_dim: usize,
    #[module(skip)]
    pub flip_sin_to_cos: bool,
    #[module(skip)]
    pub freq_shift: f64,
}

/// Nearest resize to `(h, w)` with PyTorch's `nearest` rule (source index `floor(i * in / out)`).
fn resize_nearest(x: Tensor<4>, h: usize, w: usize) -> Tensor<4> {
    let [_, _, ih, iw] = x.dims();
    if h == 2 * ih && w == 2 * iw {
        return upsample_nearest2(x);
    }
    let device = x.device();
    let rows: Vec<i64> = (0..h).map(|i| (i * ih / h) as i64).collect();
    let cols: Vec<i64> = (0..w).map(|j| (j * iw / w) as i64).collect();
    let rows = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(rows, [h]), &device);
    let cols = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(cols, [w]), &device);
    x.select(2, rows).select(3, cols)
}

impl UNet2DConditionModel {
    pub fn new(c: &UNetConfig, device: &Device) -> Self {
        let boc = &c.block_out_channels;
        let n = boc.len();
        let temb = boc[0] * 4;
        let mut down_blocks = Vec::new();
        let mut out_ch = boc[0];
        for (i, t) in c.down_block_types.iter().enumerate() {
            let input = out_ch;
            out_ch = boc[i];
            let cross = t == "CrossAttnDownBlock2D";
            down_blocks.push(DownBlock {
                resnets: (0..c.layers_per_block)
                    .map(|j| {
                        ResnetBlock::new(
                            if j == 0 { input } else { out_ch },
                            out_ch,
                            temb,
                            c,
                            device,
                        )
                    })
                    .collect(),
                attentions: if cross {
                    (0..c.layers_per_block)
                        .map(|_| Transformer2D::new(out_ch, c.heads(i), c, device))
                        .collect()
                } else {
                    vec![]
                },
                downsamplers: if i + 1 < n {
                    vec![Downsample {
                        conv: Conv2dConfig::new([out_ch, out_ch], [3, 3])
                            .with_stride([2, 2])
                            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                            .init(device),
                    }]
                } else {
                    vec![]
                },
            });
        }
        let last = boc[n - 1];
        let mid_block = MidBlock {
            resnets: vec![
                ResnetBlock::new(last, last, temb, c, device),
                ResnetBlock::new(last, last, temb, c, device),
            ],
            attentions: vec![Transformer2D::new(last, c.heads(n - 1), c, device)],
        };
        let rev: Vec<usize> = boc.iter().rev().copied().collect();
        let mut up_blocks = Vec::new();
        let mut output = rev[0];
        for (i, t) in c.up_block_types.iter().enumerate() {
            let prev = output;
            output = rev[i];
            let input = rev[(i + 1).min(n - 1)];
            let layers = c.layers_per_block + 1;
            let cross = t == "CrossAttnUpBlock2D";
            up_blocks.push(UpBlock {
                resnets: (0..layers)
                    .map(|j| {
                        let skip = if j == layers - 1 { input } else { output };
                        let rin = if j == 0 { prev } else { output };
                        ResnetBlock::new(rin + skip, output, temb, c, device)
                    })
                    .collect(),
                attentions: if cross {
                    (0..layers)
                        .map(|_| Transformer2D::new(output, c.heads(n - 1 - i), c, device))
                        .collect()
                } else {
                    vec![]
                },
                upsamplers: if i + 1 < n {
                    vec![Upsample {
                        conv: conv(output, output, 3, device),
                    }]
                } else {
                    vec![]
                },
            });
        }
        UNet2DConditionModel {
            conv_in: conv(c.in_channels, boc[0], 3, device),
            time_embedding: TimestepEmbedding {
                linear_1: lin(boc[0], temb, true, device),
                linear_2: lin(temb, temb, true, device),
            },
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: gn(c.norm_num_groups, boc[0], c.norm_eps, device),
            conv_out: conv(boc[0], c.out_channels, 3, device),
            time_dim: boc[0],
            flip_sin_to_cos: c.flip_sin_to_cos,
            freq_shift: c.freq_shift,
        }
    }

    /// diffusers `get_timestep_embedding` for `timesteps` (one per batch element).
    fn timestep_features(&self, timesteps: &[f32], dim: usize, device: &Device) -> Tensor<2> {
        let half = dim / 2;
        let mut out = Vec::with_capacity(timesteps.len() * dim);
        for &t in timesteps {
            let args: Vec<f32> = (0..half)
                .map(|i| {
                    let exponent =
                        -(10000f32.ln()) * i as f32 / (half as f32 - self.freq_shift as f32);
                    t * exponent.exp()
                })
                .collect();
            let (first, second): (Vec<f32>, Vec<f32>) = if self.flip_sin_to_cos {
                (
                    args.iter().map(|a| a.cos()).collect(),
                    args.iter().map(|a| a.sin()).collect(),
                )
            } else {
                (
                    args.iter().map(|a| a.sin()).collect(),
                    args.iter().map(|a| a.cos()).collect(),
                )
            };
            out.extend(first);
            out.extend(second);
            if dim % 2 == 1 {
                out.push(0.0);
            }
        }
        Tensor::from_data(TensorData::new(out, [timesteps.len(), dim]), device)
    }

    /// Predicts the noise for `sample` `[B, in_channels, h, w]` at `timesteps` (one per batch
    /// element), conditioned on `context` `[B, T, cross_attention_dim]`.
    ///
    /// Runs in the model's precision ([`Self::with_dtype`]): inputs are cast to it, the
    /// timestep embedding is computed in f32, and the result is f32.
    pub fn forward(&self, sample: Tensor<4>, timesteps: &[f32], context: &Tensor<3>) -> Tensor<4> {
        let device = sample.device();
        let dtype = crate::precision::activation_dtype(self.dtype());
        let feats = self.timestep_features(timesteps, self.time_dim, &device);
        let temb = self
            .time_embedding
            .linear_2
            .forward(silu(self.time_embedding.linear_1.forward(feats)));
        let temb_act = as_dtype(silu(temb), dtype);
        let context = &as_dtype(context.clone(), dtype);

        let mut h = conv2d(&self.conv_in, as_dtype(sample, dtype));
        let mut skips = vec![h.clone()];
        for block in &self.down_blocks {
            for (j, r) in block.resnets.iter().enumerate() {
                h = r.forward(h, &temb_act);
                if let Some(a) = block.attentions.get(j) {
                    h = a.forward(h, context);
                }
                skips.push(h.clone());
            }
            for d in &block.downsamplers {
                h = conv2d(&d.conv, h);
                skips.push(h.clone());
            }
        }
        h = self.mid_block.resnets[0].forward(h, &temb_act);
        h = self.mid_block.attentions[0].forward(h, context);
        h = self.mid_block.resnets[1].forward(h, &temb_act);
        for block in &self.up_blocks {
            for (j, r) in block.resnets.iter().enumerate() {
                let skip = skips.pop().expect("one skip per up resnet");
                h = r.forward(Tensor::cat(vec![h, skip], 1), &temb_act);
                if let Some(a) = block.attentions.get(j) {
                    h = a.forward(h, context);
                }
            }
            for u in &block.upsamplers {
                // Upsample to the size of the skip it will meet (odd latent sizes).
                let [_, _, th, tw] = skips.last().expect("skips remain").dims();
                h = conv2d(&u.conv, resize_nearest(h, th, tw));
            }
        }
        as_dtype(
            conv2d(&self.conv_out, gn_silu(h, &self.conv_norm_out)),
            DType::F32,
        )
    }

    /// The float type the model computes in.
    pub fn dtype(&self) -> DType {
        self.conv_in.weight.val().dtype()
    }

    /// This model with its weights in `dtype`, except the timestep embedding, which stays in
    /// f32 (sinusoidal features of timesteps up to 999 lose their phase in f16).
    pub fn with_dtype(self, dtype: FloatDType) -> Self {
        let time_embedding = self.time_embedding.clone();
        let mut m = cast_module(self, dtype);
        m.time_embedding = time_embedding;
        m
    }

    /// The timestep embedding widened to f32 (a no-op for an f32 model).
    pub fn with_f32_time_embedding(mut self) -> Self {
        self.time_embedding = cast_module(self.time_embedding, FloatDType::F32);
        self
    }
}

/// diffusers names for parts whose module path differs: `ff.net.0.proj` (GEGLU) and
/// `ff.net.2` (the output Linear); `to_out.0` is already a Vec index.
pub fn remap() -> KeyRemap {
    KeyRemap::new()
        .rule(r"\.ff\.net\.0\.proj\.", ".ff.net.geglu.proj.")
        .rule(r"\.ff\.net\.2\.", ".ff.net.out.")
}

pub struct LoadedUNet {
    pub model: UNet2DConditionModel,
    pub config: UNetConfig,
    pub report: LoadReport,
}

/// Loads from a diffusers `unet/` folder (f32 or `.fp16` file).
pub fn load_folder(dir: impl AsRef<Path>, device: &Device) -> Result<LoadedUNet, WeightsError> {
    load_folder_as(dir, device, FloatDType::F32)
}

/// [`load_folder`] with the weights in `dtype` on the device (see [`load_files_as`]).
pub fn load_folder_as(
    dir: impl AsRef<Path>,
    device: &Device,
    dtype: FloatDType,
) -> Result<LoadedUNet, WeightsError> {
    let comp = weights::component_files(&dir)?;
    let config = comp.validated_config(UNetConfig::validate)?;
    load_files_as(&comp.open()?, config, device, dtype)
}

pub fn load_files(
    files: &[SafetensorsFile],
    config: UNetConfig,
    device: &Device,
) -> Result<LoadedUNet, WeightsError> {
    load_files_as(files, config, device, FloatDType::F32)
}

/// Loads with every weight converted to `dtype` on the host before it goes to the device (no
/// f32 copy there for a half-precision model); the timestep embedding is then widened to
/// f32, where [`UNet2DConditionModel::forward`] computes it.
pub fn load_files_as(
    files: &[SafetensorsFile],
    config: UNetConfig,
    device: &Device,
    dtype: FloatDType,
) -> Result<LoadedUNet, WeightsError> {
    let options = LoadOptions {
        remap: remap(),
        float_dtype: Some(dtype),
        ..LoadOptions::default()
    };
    let (model, report) = load_module(UNet2DConditionModel::new(&config, device), files, &options)?;
    Ok(LoadedUNet {
        model: model.with_f32_time_embedding(),
        config,
        report,
    })
}
