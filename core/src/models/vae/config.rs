//! `config.json` of a VAE, resolved and validated.

use serde::Deserialize;

use crate::models::asym_decoder::MaskConditionEncoder;

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
        use crate::models::limits::{self, CHANNELS, IO_CHANNELS, LAYERS, check};
        if self.down_channels.is_empty() || self.up_channels.is_empty() {
            return Err("no blocks".into());
        }
        check("in_channels", self.in_channels, 1, IO_CHANNELS)?;
        check("out_channels", self.out_channels, 1, IO_CHANNELS)?;
        check("latent_channels", self.latent_channels, 1, IO_CHANNELS)?;
        check("norm_num_groups", self.groups, 1, CHANNELS)?;
        limits::check_all("down block channels", &self.down_channels, 1, CHANNELS)?;
        limits::check_all("up block channels", &self.up_channels, 1, CHANNELS)?;
        check("layers per down block", self.layers_down, 1, LAYERS)?;
        check("layers per up block", self.layers_up, 1, LAYERS)?;
        if !self.scaling_factor.is_finite() || !self.shift_factor.is_finite() {
            return Err("scaling_factor / shift_factor must be finite numbers".into());
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
