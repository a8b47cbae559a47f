//! The VAE encoder: image -> the posterior's mean and log-variance.

use burn::module::Module;
use burn::nn::GroupNorm;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};

use super::blocks::{DownEncoderBlock2D, Downsample2D, ResnetBlock2D, UNetMidBlock2D, conv, norm};
use super::config::VaeConfig;
use crate::cpu::conv2d;
use crate::kernels::group_norm_silu_expect as gn_silu;

#[derive(Module, Debug)]
pub struct Encoder {
    pub conv_in: Conv2d,
    pub down_blocks: Vec<DownEncoderBlock2D>,
    pub mid_block: UNetMidBlock2D,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
}

impl Encoder {
    pub(super) fn new(c: &VaeConfig, device: &Device) -> Self {
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

    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
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
