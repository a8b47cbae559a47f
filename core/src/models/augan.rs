//! AU-GAN generators (Kwak et al., BMVC 2021), for inference: night→day (`generatorA2B`, built
//! with `transfer=True`: T-net blocks between encoder and decoder, and the uncertainty head) and
//! day→night (`generatorB2A`, `transfer=False`: neither). One file holds both when the
//! checkpoint had both; the day→night tensors carry the prefix `day_to_night.`.
//!
//! The original is TensorFlow 1 (slim). Its semantics are reproduced exactly:
//! * 7x7 convs on reflect-padded input (TF `REFLECT` = edge excluded);
//! * every other conv uses TF `SAME` zero padding, which for a stride-2 conv on an even size
//!   pads 0 before and 1 after (PyTorch's `padding=1` would shift the output by a pixel);
//! * transposed convs (k3, s2, `SAME`) equal the full transposed conv cropped to `[0, 2n)`;
//! * affine instance norm with the biased variance, eps 1e-5; no conv has a bias.
//!
//! Weights use clearpaint's own safetensors layout (`weights/README.md`), written from the
//! released TF checkpoint by `weights/convert_augan_tf.py`. Conv weights are OIHW, transposed
//! conv weights are `[in, out, kh, kw]` (PyTorch `ConvTranspose2d`).

use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::activation::{relu, softplus};
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, PadMode};
use burn::tensor::{Device, Tensor};

use crate::weights::{
    KeyRemap, LoadOptions, LoadReport, SafetensorsFile, WeightsError, load_module,
};

/// The `__metadata__` "format" value of our AU-GAN files.
pub const FORMAT: &str = "clearpaint-augan-v1";

/// Instance-norm epsilon of the original `ops.instance_norm`.
const IN_EPS: f64 = 1e-5;

/// Affine instance norm: `weight * (x - mean) / sqrt(var + eps) + bias`, per sample and channel,
/// biased variance (as `tf.nn.moments`).
#[derive(Module, Debug)]
pub struct InstanceNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
}

impl InstanceNorm {
    fn new(channels: usize, device: &Device) -> Self {
        InstanceNorm {
            weight: Param::from_tensor(Tensor::ones([channels], device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, c, _, _] = x.dims();
        let mean = x.clone().mean_dims(&[2, 3]);
        let centered = x - mean;
        let var = centered.clone().square().mean_dims(&[2, 3]);
        let normed = centered / (var + IN_EPS).sqrt();
        normed * self.weight.val().reshape([1, c, 1, 1]) + self.bias.val().reshape([1, c, 1, 1])
    }
}

/// TF "SAME" padding (before, after) for one dimension.
fn same_pad(n: usize, k: usize, s: usize) -> (usize, usize) {
    let out = n.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(n);
    (total / 2, total - total / 2)
}

/// A bias-free conv; `same` selects TF SAME zero padding, otherwise VALID.
fn conv(x: Tensor<4>, w: &Param<Tensor<4>>, stride: usize, same: bool) -> Tensor<4> {
    let [_, _, h, wd] = x.dims();
    let [_, _, kh, kw] = w.val().dims();
    let padding = if same {
        [same_pad(h, kh, stride), same_pad(wd, kw, stride)]
    } else {
        [(0, 0), (0, 0)]
    };
    let options = ConvOptions {
        stride: [stride, stride],
        padding,
        dilation: [1, 1],
        groups: 1,
    };
    conv2d(x, w.val(), None, options)
}

/// `slim.conv2d_transpose(k=3, s=2, padding='SAME')`: the full transposed conv, keeping rows
/// and columns `[0, 2n)`.
fn deconv(x: Tensor<4>, w: &Param<Tensor<4>>) -> Tensor<4> {
    let [n, _, h, wd] = x.dims();
    let options = ConvTransposeOptions::new([2, 2], [0, 0], [0, 0], [1, 1], 1);
    let y = conv_transpose2d(x, w.val(), None, options);
    let c = y.dims()[1];
    y.slice([0..n, 0..c, 0..2 * h, 0..2 * wd])
}

fn reflect3(x: Tensor<4>) -> Tensor<4> {
    x.pad([(3, 3), (3, 3)], PadMode::Reflect)
}

fn param4(shape: [usize; 4], device: &Device) -> Param<Tensor<4>> {
    Param::from_tensor(Tensor::zeros(shape, device))
}

/// conv → instance norm → ReLU.
#[derive(Module, Debug)]
pub struct ConvNormRelu {
    pub conv: Param<Tensor<4>>,
    pub norm: InstanceNorm,
}

/// Residual block: `x + IN(conv(relu(IN(conv(x)))))`, no activation after the add.
#[derive(Module, Debug)]
pub struct ResBlock {
    pub conv1: Param<Tensor<4>>,
    pub norm1: InstanceNorm,
    pub conv2: Param<Tensor<4>>,
    pub norm2: InstanceNorm,
}

impl ResBlock {
    fn new(c: usize, device: &Device) -> Self {
        ResBlock {
            conv1: param4([c, c, 3, 3], device),
            norm1: InstanceNorm::new(c, device),
            conv2: param4([c, c, 3, 3], device),
            norm2: InstanceNorm::new(c, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = relu(self.norm1.forward(conv(x.clone(), &self.conv1, 1, true)));
        x + self.norm2.forward(conv(h, &self.conv2, 1, true))
    }
}

/// The uncertainty head: from the first upsampling stage to a softplus σ map.
#[derive(Module, Debug)]
pub struct ConfHead {
    pub up: ConvNormRelu,
    pub out: Param<Tensor<4>>,
}

/// Model shape, read from the weights: `ngf` is 64 in the released model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuganConfig {
    pub ngf: usize,
    /// Whether the generator has the T-net blocks (`transfer=True`: night→day).
    pub transfer: bool,
    /// Whether the file carries the σ head.
    pub uncertainty: bool,
}

/// Which of a checkpoint's generators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Night / rainy night to day (`generatorA2B`), with its uncertainty map.
    #[default]
    NightToDay,
    /// Day to night (`generatorB2A`), to add adverse conditions to a training set.
    DayToNight,
}

impl Direction {
    /// The prefix of this generator's tensors in our files.
    pub fn prefix(self) -> &'static str {
        match self {
            Direction::NightToDay => "",
            Direction::DayToNight => "day_to_night.",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Direction::NightToDay => "night-to-day",
            Direction::DayToNight => "day-to-night",
        }
    }
}

impl std::str::FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "night-to-day" => Ok(Direction::NightToDay),
            "day-to-night" => Ok(Direction::DayToNight),
            _ => Err(format!(
                "unknown direction {s:?} (night-to-day, day-to-night)"
            )),
        }
    }
}

/// An AU-GAN generator (either direction).
#[derive(Module, Debug)]
pub struct AuganGenerator {
    pub e1: ConvNormRelu,
    pub e2: ConvNormRelu,
    pub e3: ConvNormRelu,
    pub enc: Vec<ResBlock>,
    pub tnet: Vec<ResBlock>,
    pub dec: Vec<ResBlock>,
    pub d1: ConvNormRelu,
    pub d2: ConvNormRelu,
    pub out: Param<Tensor<4>>,
    pub conf: Option<ConfHead>,
}

/// What the generator produces.
pub struct AuganOutput {
    /// `[N, 3, H', W']` in [-1, 1], H' = 4·ceil(H/4).
    pub image: Tensor<4>,
    /// `[N, 1, H', W']`, σ > 0, when asked for.
    pub sigma: Option<Tensor<4>>,
}

impl AuganGenerator {
    /// A generator with zero weights (to be loaded).
    pub fn new(config: AuganConfig, device: &Device) -> Self {
        let g = config.ngf;
        let cnr = |shape: [usize; 4], norm: usize| ConvNormRelu {
            conv: param4(shape, device),
            norm: InstanceNorm::new(norm, device),
        };
        let blocks = |n: usize| (0..n).map(|_| ResBlock::new(4 * g, device)).collect();
        AuganGenerator {
            e1: cnr([g, 3, 7, 7], g),
            e2: cnr([2 * g, g, 3, 3], 2 * g),
            e3: cnr([4 * g, 2 * g, 3, 3], 4 * g),
            enc: blocks(4),
            tnet: blocks(if config.transfer { 4 } else { 0 }),
            dec: blocks(4),
            // Transposed convs: [in, out, kh, kw].
            d1: cnr([4 * g, 2 * g, 3, 3], 2 * g),
            d2: cnr([2 * g, g, 3, 3], g),
            out: param4([3, g, 7, 7], device),
            conf: config.uncertainty.then(|| ConfHead {
                up: cnr([2 * g, g, 3, 3], g),
                out: param4([1, g, 7, 7], device),
            }),
        }
    }

    /// The night→day config a weights file describes, read from tensor shapes.
    pub fn config_of(file: &SafetensorsFile) -> Result<AuganConfig, WeightsError> {
        Self::config_for(file, Direction::NightToDay)
    }

    /// The config of `direction`'s generator in a weights file, read from tensor shapes.
    pub fn config_for(
        file: &SafetensorsFile,
        direction: Direction,
    ) -> Result<AuganConfig, WeightsError> {
        let bad = |problem: String| WeightsError::BadFile {
            path: file.path().to_path_buf(),
            problem,
        };
        let p = direction.prefix();
        if direction == Direction::DayToNight
            && file.entry("e1.conv").is_some()
            && file.entry("day_to_night.e1.conv").is_none()
        {
            return Err(bad(
                "holds only the night-to-day generator (convert a checkpoint that has                  generatorB2A with weights/convert_augan_tf.py to get day-to-night too)"
                    .into(),
            ));
        }
        let e1 = file.entry(&format!("{p}e1.conv")).ok_or_else(|| {
            bad(if file.keys().any(|k| k.starts_with("generatorA2B/")) {
                "this is a TensorFlow-named AU-GAN file; convert the checkpoint with \
                 weights/convert_augan_tf.py"
                    .into()
            } else {
                "not an AU-GAN weights file: no tensor 'e1.conv' (convert the released \
                 checkpoint with weights/convert_augan_tf.py)"
                    .into()
            })
        })?;
        if e1.shape.len() != 4 || e1.shape[1..] != [3, 7, 7] {
            return Err(bad(format!(
                "'e1.conv' has shape {:?}, expected [ngf, 3, 7, 7]",
                e1.shape
            )));
        }
        Ok(AuganConfig {
            ngf: e1.shape[0],
            transfer: file.entry(&format!("{p}tnet.0.conv1")).is_some(),
            uncertainty: file.entry(&format!("{p}conf.out")).is_some(),
        })
    }

    /// Which directions a weights file holds.
    pub fn directions(file: &SafetensorsFile) -> Vec<Direction> {
        [Direction::NightToDay, Direction::DayToNight]
            .into_iter()
            .filter(|d| file.entry(&format!("{}e1.conv", d.prefix())).is_some())
            .collect()
    }

    /// Loads a generator from our safetensors layout. Every tensor must be present with the
    /// right shape; the report says what was loaded.
    pub fn load(
        path: impl AsRef<Path>,
        device: &Device,
    ) -> Result<(Self, LoadReport), WeightsError> {
        Self::load_direction(path, Direction::NightToDay, device)
    }

    /// Loads `direction`'s generator; a file without it is a one-line error saying so.
    pub fn load_direction(
        path: impl AsRef<Path>,
        direction: Direction,
        device: &Device,
    ) -> Result<(Self, LoadReport), WeightsError> {
        let file = SafetensorsFile::open(path)?;
        let config = Self::config_for(&file, direction)?;
        load_module(
            AuganGenerator::new(config, device),
            &[file],
            &Self::load_options(direction),
        )
    }

    /// The key handling of `direction`: the other generator's tensors belong to it.
    pub fn load_options(direction: Direction) -> LoadOptions {
        let remap = match direction {
            Direction::NightToDay => KeyRemap::new().ignore(r"^day_to_night\."),
            Direction::DayToNight => KeyRemap::new().only("day_to_night."),
        };
        LoadOptions {
            remap,
            ..LoadOptions::default()
        }
    }

    pub fn has_uncertainty(&self) -> bool {
        self.conf.is_some()
    }

    /// Runs the generator on `x` (`[N, 3, H, W]`, RGB in [-1, 1]). With `uncertainty`, also
    /// computes σ (requires a file with the σ head).
    pub fn forward(&self, x: Tensor<4>, uncertainty: bool) -> AuganOutput {
        let h = relu(
            self.e1
                .norm
                .forward(conv(reflect3(x), &self.e1.conv, 1, false)),
        );
        let h = relu(self.e2.norm.forward(conv(h, &self.e2.conv, 2, true)));
        let mut h = relu(self.e3.norm.forward(conv(h, &self.e3.conv, 2, true)));
        for block in self.enc.iter().chain(&self.tnet).chain(&self.dec) {
            h = block.forward(h);
        }
        let u1 = relu(self.d1.norm.forward(deconv(h, &self.d1.conv)));
        let u2 = relu(self.d2.norm.forward(deconv(u1.clone(), &self.d2.conv)));
        let image = conv(reflect3(u2), &self.out, 1, false).tanh();
        let sigma = match (&self.conf, uncertainty) {
            (Some(head), true) => {
                let c = relu(head.up.norm.forward(deconv(u1, &head.up.conv)));
                Some(softplus(conv(reflect3(c), &head.out, 1, false), 1.0))
            }
            _ => None,
        };
        AuganOutput { image, sigma }
    }
}

#[cfg(test)]
mod tests {
    use super::same_pad;

    #[test]
    fn tf_same_padding() {
        // Stride 2, k3: even sizes pad (0, 1), odd sizes (1, 1).
        assert_eq!(same_pad(256, 3, 2), (0, 1));
        assert_eq!(same_pad(9, 3, 2), (1, 1));
        // Stride 1, k3: (1, 1).
        assert_eq!(same_pad(17, 3, 1), (1, 1));
    }
}
