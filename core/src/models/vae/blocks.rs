//! The VAE's building blocks (diffusers `ResnetBlock2D` without time embedding, the
//! down / up samplers, the mid-block attention), shared by the encoder and both decoders.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::module::attention;
use burn::tensor::ops::{AttentionModuleOptions, PadMode};
use burn::tensor::{Device, Tensor};

use crate::cpu::{conv2d, linear};
use crate::kernels::group_norm_silu_expect as gn_silu;

const EPS: f64 = 1e-6;

pub(super) fn conv(cin: usize, cout: usize, k: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .init(device)
}

pub(super) fn norm(groups: usize, c: usize, device: &Device) -> GroupNorm {
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
    pub(super) fn new(cin: usize, cout: usize, groups: usize, device: &Device) -> Self {
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
    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
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
    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
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
    pub(super) fn new(c: usize, groups: usize, device: &Device) -> Self {
        let lin = || LinearConfig::new(c, c).init(device);
        VaeAttention {
            group_norm: norm(groups, c, device),
            to_q: lin(),
            to_k: lin(),
            to_v: lin(),
            to_out: vec![lin()],
        }
    }

    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let normed = crate::kernels::group_norm_expect(x.clone(), &self.group_norm);
        let hs = normed.reshape([b, c, h * w]).swap_dims(1, 2);
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
    pub(super) fn new(c: usize, groups: usize, attention: bool, device: &Device) -> Self {
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

    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
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
    pub(super) fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for r in &self.resnets {
            x = r.forward(x);
        }
        for u in &self.upsamplers {
            x = u.forward(x);
        }
        x
    }
}
