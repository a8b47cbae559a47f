//! The condition branch of the asymmetric VQGAN decoder (diffusers `MaskConditionEncoder`).
//!
//! It encodes the masked image `(1 - mask) * image` (the mask itself is not an input) with
//! five convolutions, keeping each one's output *before* its ReLU. The decoder replaces its
//! own features with these wherever the mask is 0, before each up block and after the last,
//! picking the feature whose shape matches (as diffusers does with its shape-keyed dict).

use crate::cpu::conv2d;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
pub struct MaskConditionEncoder {
    pub layers: Vec<Conv2d>,
}

impl MaskConditionEncoder {
    /// Output channels of each layer, as diffusers computes them for `stride = 16`.
    fn out_channels(out_ch: usize, res_ch: usize) -> Vec<usize> {
        let mut pairs = Vec::new();
        let (mut stride, mut out) = (16usize, out_ch);
        while stride > 1 {
            stride /= 2;
            let mut cin = out * 2;
            if out > res_ch {
                out = res_ch;
            }
            if stride == 1 {
                cin = res_ch;
            }
            pairs.push((cin, out));
            out *= 2;
        }
        let mut chans: Vec<usize> = pairs.iter().map(|p| p.1).collect();
        chans.push(pairs.last().expect("four pairs").0);
        chans
    }

    /// `(channels, downsampling)` of each layer's output.
    pub fn feature_shapes(in_ch: usize, out_ch: usize, res_ch: usize) -> Vec<(usize, usize)> {
        let _ = in_ch;
        Self::out_channels(out_ch, res_ch)
            .into_iter()
            .enumerate()
            .map(|(l, c)| (c, if l < 2 { 1 } else { 1 << (l - 1) }))
            .collect()
    }

    pub fn new(in_ch: usize, out_ch: usize, res_ch: usize, device: &Device) -> Self {
        let mut cin = in_ch;
        let layers = Self::out_channels(out_ch, res_ch)
            .into_iter()
            .enumerate()
            .map(|(l, c)| {
                let layer = if l < 2 {
                    Conv2dConfig::new([cin, c], [3, 3])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(device)
                } else {
                    Conv2dConfig::new([cin, c], [4, 4])
                        .with_stride([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(device)
                };
                cin = c;
                layer
            })
            .collect();
        MaskConditionEncoder { layers }
    }

    /// Each layer's output before its ReLU.
    pub fn forward(&self, mut x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut out = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            x = conv2d(layer, x);
            out.push(x.clone());
            x = relu(x);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::MaskConditionEncoder;

    #[test]
    fn channels_of_the_released_configs() {
        // x-1-5: 3->192, 192->384, 384->768 (s2), 768->768 (s2), 768->768 (s2)
        assert_eq!(
            MaskConditionEncoder::out_channels(192, 768),
            vec![192, 384, 768, 768, 768]
        );
        // x-2
        assert_eq!(
            MaskConditionEncoder::out_channels(256, 1024),
            vec![256, 512, 1024, 1024, 1024]
        );
    }
}
