//! The VAE decoder; with a condition encoder it is the asymmetric `MaskConditionDecoder`.

use burn::module::Module;
use burn::nn::GroupNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};

use super::blocks::{ResnetBlock2D, UNetMidBlock2D, UpDecoderBlock2D, Upsample2D, conv, norm};
use super::config::VaeConfig;
use crate::cpu::conv2d;
use crate::kernels::group_norm_silu_expect as gn_silu;
use crate::models::asym_decoder::MaskConditionEncoder;

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
    pub(super) fn new(c: &VaeConfig, device: &Device) -> Self {
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
