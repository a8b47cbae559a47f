//! The SD 1.x VAE (diffusers `AutoencoderKL`) and the asymmetric VAE
//! (`AsymmetricAutoencoderKL`, whose decoder is a [`MaskConditionEncoder`]-conditioned
//! `MaskConditionDecoder`). One set of blocks serves both; field names mirror diffusers'
//! state-dict names, so diffusers folders load without remapping.
//!
//! Facts that matter for parity: GroupNorm eps 1e-6, SiLU; the encoder's downsampler pads
//! (0, 1, 0, 1) then convolves with stride 2 and no padding; the decoder's upsampler is nearest
//! x2 then a 3x3 conv; the mid-block attention is single-head over all pixels with a residual;
//! the posterior's log-variance is clamped to [-30, 20].

use crate::kernels::group_norm_silu_expect as gn_silu;
use std::path::Path;

use crate::cpu::{conv2d, linear};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::module::attention;
use burn::tensor::ops::{AttentionModuleOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

use super::asym_decoder::MaskConditionEncoder;
use crate::weights::{
    self, KeyRemap, LoadOptions, LoadReport, SafetensorsFile, WeightsError, load_module,
};

const EPS: f64 = 1e-6;

fn conv(cin: usize, cout: usize, k: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .init(device)
}

fn norm(groups: usize, c: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new(groups, c)
        .with_epsilon(EPS)
        .init(device)
}

/// diffusers `ResnetBlock2D` without a time embedding.
#[derive(Module, Debug)]
pub struct ResnetBlock2D {
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    pub norm2: GroupNorm,
    pub conv2: Conv2d,
    pub conv_shortcut: Option<Conv2d>,
}

impl ResnetBlock2D {
    fn new(cin: usize, cout: usize, groups: usize, device: &Device) -> Self {
        ResnetBlock2D {
            norm1: norm(groups, cin, device),
            conv1: conv(cin, cout, 3, device),
            norm2: norm(groups, cout, device),
            conv2: conv(cout, cout, 3, device),
            conv_shortcut: (cin != cout).then(|| conv(cin, cout, 1, device)),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = conv2d(&self.conv1, gn_silu(x.clone(), &self.norm1));
        let h = conv2d(&self.conv2, gn_silu(h, &self.norm2));
        let shortcut = match &self.conv_shortcut {
            Some(c) => conv2d(c, x),
            None => x,
        };
        shortcut + h
    }
}

/// Stride-2 3x3 conv after padding (0, 1) on each spatial axis (diffusers `Downsample2D`,
/// `padding=0`).
#[derive(Module, Debug)]
pub struct Downsample2D {
    pub conv: Conv2d,
}

impl Downsample2D {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv
            .forward(x.pad([(0, 1), (0, 1)], PadMode::Constant(0.0)))
    }
}

/// Nearest x2 then a 3x3 conv (diffusers `Upsample2D`).
#[derive(Module, Debug)]
pub struct Upsample2D {
    pub conv: Conv2d,
}

/// Nearest-neighbour upsampling by 2 (exact: each pixel repeated into a 2x2 block).
pub fn upsample_nearest2(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .repeat_dim(3, 2)
        .repeat_dim(5, 2)
        .reshape([b, c, 2 * h, 2 * w])
}

impl Upsample2D {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(&self.conv, upsample_nearest2(x))
    }
}

/// Single-head self-attention over all pixels, with GroupNorm and a residual (diffusers
/// `Attention` as built by `UNetMidBlock2D` for the VAE).
#[derive(Module, Debug)]
pub struct VaeAttention {
    pub group_norm: GroupNorm,
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub to_out: Vec<Linear>,
}

impl VaeAttention {
    fn new(c: usize, groups: usize, device: &Device) -> Self {
        let lin = || LinearConfig::new(c, c).init(device);
        VaeAttention {
            group_norm: norm(groups, c, device),
            to_q: lin(),
            to_k: lin(),
            to_v: lin(),
            to_out: vec![lin()],
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let hs = self
            .group_norm
            .forward(x.clone())
            .reshape([b, c, h * w])
            .swap_dims(1, 2);
        let heads = |t: Tensor<3>| t.reshape([b, 1, h * w, c]);
        let q = heads(linear(&self.to_q, hs.clone()));
        let k = heads(linear(&self.to_k, hs.clone()));
        let v = heads(linear(&self.to_v, hs));
        // Scale 1/sqrt(c) (one head of dim c). The fused op avoids a [hw, hw] score buffer
        // where the backend has a flash kernel.
        let o = crate::cpu::attention(&q, &k, &v)
            .unwrap_or_else(|| attention(q, k, v, None, None, AttentionModuleOptions::default()))
            .reshape([b, h * w, c]);
        let o = linear(&self.to_out[0], o);
        o.swap_dims(1, 2).reshape([b, c, h, w]) + x
    }
}

/// resnet → attention → resnet.
#[derive(Module, Debug)]
pub struct UNetMidBlock2D {
    pub resnets: Vec<ResnetBlock2D>,
    pub attentions: Vec<VaeAttention>,
}

impl UNetMidBlock2D {
    fn new(c: usize, groups: usize, attention: bool, device: &Device) -> Self {
        UNetMidBlock2D {
            resnets: vec![
                ResnetBlock2D::new(c, c, groups, device),
                ResnetBlock2D::new(c, c, groups, device),
            ],
            attentions: if attention {
                vec![VaeAttention::new(c, groups, device)]
            } else {
                vec![]
            },
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = self.resnets[0].forward(x);
        if let Some(a) = self.attentions.first() {
            h = a.forward(h);
        }
        self.resnets[1].forward(h)
    }
}

#[derive(Module, Debug)]
pub struct DownEncoderBlock2D {
    pub resnets: Vec<ResnetBlock2D>,
    pub downsamplers: Vec<Downsample2D>,
}

#[derive(Module, Debug)]
pub struct UpDecoderBlock2D {
    pub resnets: Vec<ResnetBlock2D>,
    pub upsamplers: Vec<Upsample2D>,
}

impl UpDecoderBlock2D {
    fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for r in &self.resnets {
            x = r.forward(x);
        }
        for u in &self.upsamplers {
            x = u.forward(x);
        }
        x
    }
}

#[derive(Module, Debug)]
pub struct Encoder {
    pub conv_in: Conv2d,
    pub down_blocks: Vec<DownEncoderBlock2D>,
    pub mid_block: UNetMidBlock2D,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
}

impl Encoder {
    fn new(c: &VaeConfig, device: &Device) -> Self {
        let ch = &c.down_channels;
        let g = c.groups;
        let down_blocks = (0..ch.len())
            .map(|i| {
                let cin = if i == 0 { ch[0] } else { ch[i - 1] };
                DownEncoderBlock2D {
                    resnets: (0..c.layers_down)
                        .map(|j| {
                            ResnetBlock2D::new(if j == 0 { cin } else { ch[i] }, ch[i], g, device)
                        })
                        .collect(),
                    downsamplers: if i + 1 < ch.len() {
                        vec![Downsample2D {
                            conv: Conv2dConfig::new([ch[i], ch[i]], [3, 3])
                                .with_stride([2, 2])
                                .init(device),
                        }]
                    } else {
                        vec![]
                    },
                }
            })
            .collect();
        let last = *ch.last().expect("validated: at least one block");
        Encoder {
            conv_in: conv(c.in_channels, ch[0], 3, device),
            down_blocks,
            mid_block: UNetMidBlock2D::new(last, g, c.mid_attention, device),
            conv_norm_out: norm(g, last, device),
            conv_out: conv(last, 2 * c.latent_channels, 3, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = conv2d(&self.conv_in, x);
        for block in &self.down_blocks {
            for r in &block.resnets {
                h = r.forward(h);
            }
            for d in &block.downsamplers {
                h = d.forward(h);
            }
        }
        h = self.mid_block.forward(h);
        conv2d(&self.conv_out, gn_silu(h, &self.conv_norm_out))
    }
}

/// The decoder; with a `condition_encoder` it is the asymmetric `MaskConditionDecoder`.
#[derive(Module, Debug)]
pub struct Decoder {
    pub conv_in: Conv2d,
    pub mid_block: UNetMidBlock2D,
    pub up_blocks: Vec<UpDecoderBlock2D>,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
    pub condition_encoder: Option<MaskConditionEncoder>,
}

/// Nearest downsampling of a `[B, 1, H, W]` mask by an integer factor (PyTorch
/// `interpolate(mode="nearest")` to `H/f x W/f` picks rows and columns `0, f, 2f, ...`).
pub fn downsample_mask(mask: Tensor<4>, factor: usize) -> Tensor<4> {
    if factor == 1 {
        return mask;
    }
    let [b, c, h, w] = mask.dims();
    let (oh, ow) = (h / factor, w / factor);
    mask.slice([0..b, 0..c, 0..oh * factor, 0..ow * factor])
        .reshape([b, c, oh, factor, ow, factor])
        .slice([0..b, 0..c, 0..oh, 0..1, 0..ow, 0..1])
        .reshape([b, c, oh, ow])
}

impl Decoder {
    fn new(c: &VaeConfig, device: &Device) -> Self {
        let g = c.groups;
        let rev: Vec<usize> = c.up_channels.iter().rev().copied().collect();
        let up_blocks = (0..rev.len())
            .map(|i| {
                let cin = if i == 0 { rev[0] } else { rev[i - 1] };
                let cout = rev[i];
                UpDecoderBlock2D {
                    resnets: (0..c.layers_up + 1)
                        .map(|j| {
                            ResnetBlock2D::new(if j == 0 { cin } else { cout }, cout, g, device)
                        })
                        .collect(),
                    upsamplers: if i + 1 < rev.len() {
                        vec![Upsample2D {
                            conv: conv(cout, cout, 3, device),
                        }]
                    } else {
                        vec![]
                    },
                }
            })
            .collect();
        Decoder {
            conv_in: conv(c.latent_channels, rev[0], 3, device),
            mid_block: UNetMidBlock2D::new(rev[0], g, c.mid_attention, device),
            up_blocks,
            conv_norm_out: norm(g, c.up_channels[0], device),
            conv_out: conv(c.up_channels[0], c.out_channels, 3, device),
            condition_encoder: c.asymmetric.then(|| {
                MaskConditionEncoder::new(c.out_channels, c.up_channels[0], rev[0], device)
            }),
        }
    }

    /// Decodes `z` (after `post_quant_conv`). With `condition = (image, mask)` and a condition
    /// encoder, features of the unmasked image replace the decoder's where `mask` is 0.
    pub fn forward(&self, z: Tensor<4>, condition: Option<(Tensor<4>, Tensor<4>)>) -> Tensor<4> {
        let mut sample = self.mid_block.forward(conv2d(&self.conv_in, z));
        let cond = match (&self.condition_encoder, condition) {
            (Some(enc), Some((image, mask))) => {
                let masked = (mask.clone().neg() + 1.0) * image;
                Some((enc.forward(masked), mask))
            }
            _ => None,
        };
        let fuse = |sample: Tensor<4>, feats: &[Tensor<4>], mask: &Tensor<4>| {
            let dims = sample.dims();
            let f = feats
                .iter()
                .rev()
                .find(|f| f.dims() == dims)
                .expect("condition features match (config validated)")
                .clone();
            // m = the mask nearest-resized to the features; sample * m + f * (1 - m).
            crate::kernels::mask_swap(sample, f, mask.clone())
        };
        for up in &self.up_blocks {
            if let Some((feats, mask)) = &cond {
                sample = fuse(sample, feats, mask);
            }
            sample = up.forward(sample);
        }
        if let Some((feats, mask)) = &cond {
            sample = fuse(sample, feats, mask);
        }
        conv2d(&self.conv_out, gn_silu(sample, &self.conv_norm_out))
    }
}

/// The posterior `N(mean, exp(logvar))` over latents.
#[derive(Debug, Clone)]
pub struct DiagonalGaussian {
    pub mean: Tensor<4>,
    /// Clamped to [-30, 20].
    pub logvar: Tensor<4>,
}

impl DiagonalGaussian {
    pub fn mode(&self) -> Tensor<4> {
        self.mean.clone()
    }

    pub fn std(&self) -> Tensor<4> {
        (self.logvar.clone() * 0.5).exp()
    }

    /// `mean + std * eps` for a given standard-normal `eps`.
    pub fn sample_with(&self, eps: Tensor<4>) -> Tensor<4> {
        self.mean.clone() + self.std() * eps
    }

    /// A sample drawn with `seed` (host-side RNG, so the same seed gives the same noise on
    /// every device).
    pub fn sample(&self, seed: u64) -> Tensor<4> {
        let dims = self.mean.dims();
        let eps = gaussian_noise(dims, seed, &self.mean.device());
        self.sample_with(eps)
    }
}

/// Standard-normal noise of `shape` from `seed` (SplitMix64 + Box-Muller), generated on the
/// host so it does not depend on the device.
pub fn gaussian_noise(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u1 = ((next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = ((next() >> 11) as f64) / (1u64 << 53) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        out.push((r * t.cos()) as f32);
        if out.len() < n {
            out.push((r * t.sin()) as f32);
        }
    }
    Tensor::from_data(TensorData::new(out, shape), device)
}

/// `config.json` of a diffusers `AutoencoderKL` or `AsymmetricAutoencoderKL`.
#[derive(Debug, Clone, Deserialize)]
pub struct VaeConfigJson {
    #[serde(rename = "_class_name")]
    pub class_name: Option<String>,
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    #[serde(default = "four")]
    pub latent_channels: usize,
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    pub block_out_channels: Option<Vec<usize>>,
    pub layers_per_block: Option<usize>,
    pub down_block_out_channels: Option<Vec<usize>>,
    pub up_block_out_channels: Option<Vec<usize>>,
    pub layers_per_down_block: Option<usize>,
    pub layers_per_up_block: Option<usize>,
    pub down_block_types: Option<Vec<String>>,
    pub up_block_types: Option<Vec<String>>,
    pub act_fn: Option<String>,
    pub scaling_factor: Option<f64>,
    pub shift_factor: Option<f64>,
    pub use_quant_conv: Option<bool>,
    pub use_post_quant_conv: Option<bool>,
    pub mid_block_add_attention: Option<bool>,
}

fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn thirty_two() -> usize {
    32
}

/// A resolved, validated VAE configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub latent_channels: usize,
    pub groups: usize,
    pub down_channels: Vec<usize>,
    pub layers_down: usize,
    pub up_channels: Vec<usize>,
    /// Resnets per up block minus one (diffusers' `layers_per_block` of the decoder).
    pub layers_up: usize,
    /// A `MaskConditionDecoder` with a condition encoder.
    pub asymmetric: bool,
    pub scaling_factor: f64,
    pub shift_factor: f64,
    pub use_quant_conv: bool,
    pub use_post_quant_conv: bool,
    pub mid_attention: bool,
}

impl VaeConfig {
    /// SD 1.x `AutoencoderKL`.
    pub fn sd1() -> Self {
        VaeConfig {
            in_channels: 3,
            out_channels: 3,
            latent_channels: 4,
            groups: 32,
            down_channels: vec![128, 256, 512, 512],
            layers_down: 2,
            up_channels: vec![128, 256, 512, 512],
            layers_up: 2,
            asymmetric: false,
            scaling_factor: 0.18215,
            shift_factor: 0.0,
            use_quant_conv: true,
            use_post_quant_conv: true,
            mid_attention: true,
        }
    }

    /// The released asymmetric x-1-5 VAE.
    pub fn asymmetric_x1_5() -> Self {
        VaeConfig {
            up_channels: vec![192, 384, 768, 768],
            layers_up: 3,
            asymmetric: true,
            ..Self::sd1()
        }
    }

    /// The released asymmetric x-2 VAE.
    pub fn asymmetric_x2() -> Self {
        VaeConfig {
            up_channels: vec![256, 512, 1024, 1024],
            layers_up: 5,
            asymmetric: true,
            ..Self::sd1()
        }
    }

    /// Latent downsampling factor, `2^(levels - 1)`.
    pub fn scale_factor(&self) -> usize {
        1 << (self.up_channels.len() - 1)
    }

    /// Resolves a diffusers config; `Err` says what is unsupported.
    pub fn from_json(j: &VaeConfigJson) -> Result<Self, String> {
        let asymmetric = match j.class_name.as_deref() {
            Some("AsymmetricAutoencoderKL") => true,
            Some("AutoencoderKL") | None => j.up_block_out_channels.is_some(),
            Some(other) => return Err(format!("'{other}' is not a VAE clearpaint can run")),
        };
        let (down, layers_down, up, layers_up) = if asymmetric {
            (
                j.down_block_out_channels
                    .clone()
                    .ok_or("missing down_block_out_channels")?,
                j.layers_per_down_block.unwrap_or(1),
                j.up_block_out_channels
                    .clone()
                    .ok_or("missing up_block_out_channels")?,
                j.layers_per_up_block.unwrap_or(1),
            )
        } else {
            let b = j.block_out_channels.clone().unwrap_or_else(|| vec![64]);
            let l = j.layers_per_block.unwrap_or(1);
            (b.clone(), l, b, l)
        };
        if let Some(a) = &j.act_fn
            && a != "silu"
        {
            return Err(format!("act_fn '{a}' is not supported (only silu)"));
        }
        for t in j.down_block_types.iter().flatten() {
            if t != "DownEncoderBlock2D" {
                return Err(format!("down block type '{t}' is not supported"));
            }
        }
        for t in j.up_block_types.iter().flatten() {
            if t != "UpDecoderBlock2D" {
                return Err(format!("up block type '{t}' is not supported"));
            }
        }
        let c = VaeConfig {
            in_channels: j.in_channels,
            out_channels: j.out_channels,
            latent_channels: j.latent_channels,
            groups: j.norm_num_groups,
            down_channels: down,
            layers_down,
            up_channels: up,
            layers_up,
            asymmetric,
            scaling_factor: j.scaling_factor.unwrap_or(0.18215),
            shift_factor: j.shift_factor.unwrap_or(0.0),
            use_quant_conv: j.use_quant_conv.unwrap_or(true),
            use_post_quant_conv: j.use_post_quant_conv.unwrap_or(true),
            mid_attention: j.mid_block_add_attention.unwrap_or(true),
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks group counts and, for the asymmetric decoder, that the condition encoder's
    /// feature maps line up with every fusion point (as in the released [c, 2c, 4c, 4c]
    /// configs).
    pub fn validate(&self) -> Result<(), String> {
        if self.down_channels.is_empty() || self.up_channels.is_empty() {
            return Err("no blocks".into());
        }
        for &c in self.down_channels.iter().chain(&self.up_channels) {
            if self.groups == 0 || c % self.groups != 0 {
                return Err(format!(
                    "{c} channels are not divisible into {} groups",
                    self.groups
                ));
            }
        }
        if self.asymmetric {
            let n = self.up_channels.len();
            if n != 4 {
                return Err(format!(
                    "the asymmetric decoder needs 4 up blocks (its condition encoder works at \
                     strides 1..8), this config has {n}"
                ));
            }
            let rev: Vec<usize> = self.up_channels.iter().rev().copied().collect();
            let feats = MaskConditionEncoder::feature_shapes(
                self.out_channels,
                self.up_channels[0],
                rev[0],
            );
            // (channels, downsampling) at each fusion point.
            let mut points = vec![(rev[0], 8usize)];
            let mut stride = 8usize;
            for (i, &c) in rev.iter().enumerate() {
                if i + 1 < n {
                    stride /= 2;
                }
                points.push((c, stride));
            }
            for (c, s) in points {
                if !feats.contains(&(c, s)) {
                    return Err(format!(
                        "up_block_out_channels {:?} do not line up with the condition encoder \
                         (no {c}-channel feature at 1/{s} resolution); the released configs \
                         double the width per level ([c, 2c, 4c, 4c])",
                        self.up_channels
                    ));
                }
            }
        }
        Ok(())
    }
}

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
    pub fn decode(&self, z: Tensor<4>, condition: Option<(Tensor<4>, Tensor<4>)>) -> Tensor<4> {
        let z = match &self.post_quant_conv {
            Some(p) => conv2d(p, z),
            None => z,
        };
        self.decoder.forward(z, condition)
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

/// Latent-space tiling for decoding large images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Tile edge in latent pixels.
    pub tile: usize,
    /// Overlap between neighbouring tiles in latent pixels (blended linearly).
    pub overlap: usize,
}

/// Start offsets of tiles of `tile` with `overlap` covering `n` (the last one flush with the end).
fn tile_starts(n: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if n <= tile {
        return vec![0];
    }
    let step = (tile - overlap).max(1);
    let mut starts: Vec<usize> = (0..)
        .map(|i| i * step)
        .take_while(|s| s + tile < n)
        .collect();
    starts.push(n - tile);
    starts
}

/// Blend weights along one axis of a tile of `len` output pixels: a linear ramp over
/// `ramp` pixels on each side that touches another tile, 1 elsewhere.
fn ramp(len: usize, ramp: usize, at_start: bool, at_end: bool) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let mut w = 1.0f32;
            if !at_start && ramp > 0 {
                w = w.min((i as f32 + 0.5) / ramp as f32);
            }
            if !at_end && ramp > 0 {
                w = w.min((len as f32 - i as f32 - 0.5) / ramp as f32);
            }
            w
        })
        .collect()
}

/// Runs `f` on overlapping latent tiles of `z` and blends the results. `f` maps a latent
/// tile and its `(y, x)` latent offset to an output `factor` times larger. With a local `f`
/// the result equals `f` on the whole input; a decoder's GroupNorm and attention see only their
/// tile, so tiled decoding differs slightly from whole decoding near tile seams.
pub fn tiled_map(
    z: Tensor<4>,
    tiling: Tiling,
    factor: usize,
    mut f: impl FnMut(Tensor<4>, usize, usize) -> Tensor<4>,
) -> Tensor<4> {
    let [b, c, h, w] = z.dims();
    let device = z.device();
    let (th, tw) = (tiling.tile.min(h), tiling.tile.min(w));
    let ys = tile_starts(h, th, tiling.overlap);
    let xs = tile_starts(w, tw, tiling.overlap);
    let (oh, ow) = (h * factor, w * factor);
    let mut out: Option<Tensor<4>> = None;
    let mut wsum = vec![0f32; oh * ow];
    let r = tiling.overlap * factor;
    for (yi, &y0) in ys.iter().enumerate() {
        for (xi, &x0) in xs.iter().enumerate() {
            let tile = z.clone().slice([0..b, 0..c, y0..y0 + th, x0..x0 + tw]);
            let dec = f(tile, y0, x0);
            let [_, oc, dh, dw] = dec.dims();
            let wy = ramp(dh, r, yi == 0, yi + 1 == ys.len());
            let wx = ramp(dw, r, xi == 0, xi + 1 == xs.len());
            let mut wmap = Vec::with_capacity(dh * dw);
            for (i, a) in wy.iter().enumerate() {
                for (j, bx) in wx.iter().enumerate() {
                    let v = a * bx;
                    wmap.push(v);
                    wsum[(y0 * factor + i) * ow + x0 * factor + j] += v;
                }
            }
            let wt: Tensor<4> = Tensor::from_data(TensorData::new(wmap, [1, 1, dh, dw]), &device);
            let acc = out.get_or_insert_with(|| Tensor::zeros([b, oc, oh, ow], &device));
            let (ry, rx) = (y0 * factor..y0 * factor + dh, x0 * factor..x0 * factor + dw);
            let region = acc.clone().slice([0..b, 0..oc, ry.clone(), rx.clone()]);
            *acc = acc
                .clone()
                .slice_assign([0..b, 0..oc, ry, rx], region + dec * wt);
        }
    }
    let wsum: Tensor<4> = Tensor::from_data(TensorData::new(wsum, [1, 1, oh, ow]), &device);
    out.expect("at least one tile") / wsum
}

impl VaeConfig {
    /// Bytes of the largest single activation when decoding a `batch` of `h x w` latents
    /// (whole, not tiled), including the mid-block attention scores in case the backend
    /// materialises them, and the condition encoder's maps for the asymmetric decoder.
    pub fn decode_peak_bytes(&self, batch: usize, h: usize, w: usize) -> u64 {
        let rev: Vec<usize> = self.up_channels.iter().rev().copied().collect();
        let mut peak = 0u64;
        let mut at = |c: usize, s: usize| {
            let bytes = (batch * c * h * s * w * s * 4) as u64;
            peak = peak.max(bytes);
        };
        let mut s = 1;
        at(rev[0], 1);
        for (i, &c) in rev.iter().enumerate() {
            at(c.max(if i == 0 { rev[0] } else { rev[i - 1] }), s);
            if i + 1 < rev.len() {
                s *= 2;
                at(c, s);
            }
        }
        if self.asymmetric {
            for (c, down) in
                MaskConditionEncoder::feature_shapes(self.out_channels, self.up_channels[0], rev[0])
            {
                let full = self.scale_factor();
                at(c, full / down);
            }
        }
        let scores = (batch * h * w * h * w * 4) as u64;
        peak.max(scores)
    }

    /// No tiling when the whole decode fits `max_tensor_bytes`; otherwise the largest square
    /// tile (a multiple of 8 latent pixels, overlap a quarter of it) that does.
    pub fn choose_tiling(
        &self,
        batch: usize,
        h: usize,
        w: usize,
        max_tensor_bytes: u64,
    ) -> Option<Tiling> {
        if self.decode_peak_bytes(batch, h, w) <= max_tensor_bytes {
            return None;
        }
        let mut tile = h.max(w).next_multiple_of(8);
        while tile > 8 && self.decode_peak_bytes(batch, tile, tile) > max_tensor_bytes {
            tile -= 8;
        }
        Some(Tiling {
            tile,
            overlap: tile / 4,
        })
    }
}

impl AutoencoderKL {
    /// Decodes in overlapping latent tiles (see [`tiled_map`]); the condition image and mask
    /// are cropped to each tile.
    pub fn decode_tiled(
        &self,
        z: Tensor<4>,
        condition: Option<(Tensor<4>, Tensor<4>)>,
        tiling: Tiling,
        factor: usize,
    ) -> Tensor<4> {
        let [_, _, th, tw] = z.dims();
        let (th, tw) = (tiling.tile.min(th), tiling.tile.min(tw));
        tiled_map(z, tiling, factor, |tile, y0, x0| {
            let cond = condition.as_ref().map(|(img, mask)| {
                let crop = |t: &Tensor<4>| {
                    let [b, c, _, _] = t.dims();
                    t.clone().slice([
                        0..b,
                        0..c,
                        y0 * factor..(y0 + th) * factor,
                        x0 * factor..(x0 + tw) * factor,
                    ])
                };
                (crop(img), crop(mask))
            });
            self.decode(tile, cond)
        })
    }

    /// Decodes whole when the largest activation fits `max_tensor_bytes` (the device's
    /// largest buffer), in tiles otherwise. Returns the tiling used, if any.
    pub fn decode_within(
        &self,
        config: &VaeConfig,
        z: Tensor<4>,
        condition: Option<(Tensor<4>, Tensor<4>)>,
        max_tensor_bytes: u64,
    ) -> (Tensor<4>, Option<Tiling>) {
        let [b, _, h, w] = z.dims();
        match config.choose_tiling(b, h, w, max_tensor_bytes) {
            None => (self.decode(z, condition), None),
            Some(t) => (
                self.decode_tiled(z, condition, t, config.scale_factor()),
                Some(t),
            ),
        }
    }
}
