//! Which floating-point precision models run in.
//!
//! * `auto`: f16 on a wgpu adapter with shader-f16 (GPUs do their fast arithmetic in half
//!   precision, and it halves the weights' memory), f32 elsewhere and on the CPU.
//! * `f32`: everything in f32, as the reference implementations.
//! * `f16`: half precision on the GPU (an error where the adapter has no shader-f16, or on the
//!   CPU: its half precision is bf16).
//! * `bf16`: bfloat16 on the CPU: the weights of the checked models stored in bf16 (half the
//!   memory), products on bf16 inputs with f32 sums, statistics in f32. `auto` picks it on
//!   CPUs whose bf16 dot products (AVX512_BF16's `vdpbf16ps`) outrun their f32 FMAs, measured
//!   at start-up (`cpu::bf16_speed_vs_f32`: Zen 4 has them at twice the rate, some Xeons at a
//!   fraction); elsewhere its products run on our f32 kernels after widening (`cpu/half.rs`),
//!   which saves memory but not time ([`CpuBf16`]).
//!
//! The choice comes from the `--precision` flag or `CLEARPAINT_PRECISION`. A model runs in the
//! resolved precision only where it has been measured to hold up in it
//! ([`Half::for_model`]); the others stay in f32, and say so.

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, FloatDType, Tensor};

use crate::device::Selected;

/// Environment variable that selects the precision when no flag is given.
pub const PRECISION_ENV: &str = "CLEARPAINT_PRECISION";

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Half precision where the device is fast at it (f16 on a GPU with shader-f16, bf16 on a
    /// CPU fast at bf16 dot products), else f32.
    #[default]
    Auto,
    F32,
    F16,
    Bf16,
}

impl Precision {
    /// All choices, in the order they are documented.
    pub const ALL: [Precision; 4] = [
        Precision::Auto,
        Precision::F32,
        Precision::F16,
        Precision::Bf16,
    ];

    /// The name used on the command line and in `CLEARPAINT_PRECISION`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// The choice named by `CLEARPAINT_PRECISION`, or `auto` when it is unset or empty.
    pub fn from_env() -> Result<Precision, PrecisionError> {
        match std::env::var(PRECISION_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse().map_err(|e: PrecisionError| match e {
                PrecisionError::Unknown(v) => PrecisionError::UnknownEnv(v),
                other => other,
            }),
            _ => Ok(Precision::Auto),
        }
    }

    /// The precision this choice gives on `device`, or why it cannot run there.
    pub fn resolve(self, device: &Selected) -> Result<Half, PrecisionError> {
        match (self, device.is_cpu, device.shader_f16) {
            (Precision::Auto, true, _) if crate::cpu::bf16_kernels_used() => Ok(Half::Bf16),
            (Precision::F32, ..) | (Precision::Auto, true, _) | (Precision::Auto, false, false) => {
                Ok(Half::Off)
            }
            (Precision::Auto | Precision::F16, false, true) => Ok(Half::On),
            (Precision::F16, true, _) => Err(PrecisionError::NotOnCpu),
            (Precision::F16, false, false) => {
                Err(PrecisionError::NoShaderF16(device.description.clone()))
            }
            (Precision::Bf16, true, _) => Ok(Half::Bf16),
            (Precision::Bf16, false, _) => Err(PrecisionError::Bf16NotOnGpu),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = PrecisionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Precision::Auto),
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "f16" | "fp16" | "float16" | "half" => Ok(Precision::F16),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            _ => Err(PrecisionError::Unknown(s.to_string())),
        }
    }
}

impl Selected {
    /// This device with `precision` resolved on it ([`Precision::resolve`]); the description
    /// says when half precision is on.
    pub fn with_precision(mut self, precision: Precision) -> Result<Selected, PrecisionError> {
        self.half = precision.resolve(&self)?;
        match self.half {
            Half::On => self
                .description
                .push_str(", f16 where checked (UNet, text encoder, VAE decoders)"),
            Half::Bf16 => self
                .description
                .push_str(", bf16 weights where checked (UNet, text encoder, VAE decoders)"),
            Half::Off => {}
        }
        Ok(self)
    }
}

/// Whether half precision is on for a run, after [`Precision::resolve`]: `On` is f16 (the
/// GPU's), `Bf16` bfloat16 (the CPU's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Off,
    On,
    Bf16,
}

/// The networks, for the per-model precision decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// The VAE decoder and the asymmetric (mask-conditioned) decoder.
    VaeDecoder,
    /// The denoising UNet (its timestep embedding stays in f32).
    Unet,
    /// The CLIP text encoder.
    TextEncoder,
    /// Every other network (the VAE encoder, Paint-by-Example's image encoder, AU-GAN: still
    /// f32 at every precision).
    Other,
}

impl Half {
    /// The float type `model` runs in. Half precision is used only for models checked in it
    /// against their reference (`core/tests/half_parity.rs`: within diffusers' own fp16
    /// error): the VAE decoders, the UNet and the text encoder so far. Their statistics (GroupNorm, LayerNorm)
    /// and products stay in f32, and a decode that overflows is redone in f32 by the caller.
    ///
    /// bf16 (the CPU's) goes to the same models, checked the same way against PyTorch's bf16
    /// autocast (`core/tests/bf16_parity.rs`).
    pub fn for_model(self, model: Model) -> FloatDType {
        match (self, model) {
            (Half::On, Model::VaeDecoder | Model::Unet | Model::TextEncoder) => FloatDType::F16,
            (Half::Bf16, Model::VaeDecoder | Model::Unet | Model::TextEncoder) => FloatDType::BF16,
            _ => FloatDType::F32,
        }
    }

    /// The name of the resolved precision, as reports and JSON show it.
    pub fn name(self) -> &'static str {
        match self {
            Half::Off => "f32",
            Half::On => "f16",
            Half::Bf16 => "bf16",
        }
    }
}

/// The float type activations take in a model whose weights are in `weights`: f16 models
/// compute in f16 (the GPU's half precision, activations too), bf16 models in f32 (bf16
/// weights, f32 activations: PyTorch's bf16 autocast and oneDNN keep the residual stream and
/// the norms' outputs in f32; measured, bf16 activations put the text encoder at 1.6x and a
/// DPM++ 2M inpaint at 2.5x autocast's error), f32 models in f32.
pub fn activation_dtype(weights: DType) -> DType {
    if weights == DType::BF16 {
        DType::F32
    } else {
        weights
    }
}

/// Whether `dtype` is one of the half-precision float types (f16, bf16), whose products and
/// statistics our kernels compute in f32.
pub fn is_half(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
}

/// The CPU's bf16 arithmetic, detected at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuBf16 {
    /// AVX512_BF16: `vdpbf16ps`, bf16 pair dot products accumulated in f32.
    pub avx512_bf16: bool,
    /// AMX-BF16: tile matrix multiplies on bf16.
    pub amx_bf16: bool,
}

impl CpuBf16 {
    /// What this CPU has.
    pub fn detect() -> CpuBf16 {
        #[cfg(target_arch = "x86_64")]
        {
            CpuBf16 {
                avx512_bf16: std::arch::is_x86_feature_detected!("avx512bf16"),
                // CPUID leaf 7, EDX bit 22 (std's AMX detection is not stable yet).
                amx_bf16: std::arch::x86_64::__cpuid_count(7, 0).edx & (1 << 22) != 0,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            CpuBf16::default()
        }
    }

    /// One line for `clearpaint devices`.
    pub fn describe(self) -> String {
        let has: Vec<&str> = [
            (self.avx512_bf16, "AVX512_BF16"),
            (self.amx_bf16, "AMX-BF16"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
        if has.is_empty() {
            return "no bf16 dot products; auto = f32 (bf16 runs on the f32 kernels after \
                    widening: it halves the weights' memory, not the time)"
                .to_string();
        }
        let speed = crate::cpu::bf16_speed_vs_f32();
        let auto = if crate::cpu::bf16_kernels_used() {
            "auto = bf16 (bf16 layers' products on the bf16 dot products)"
        } else {
            "auto = f32 (bf16 runs on the f32 kernels after widening: it halves the weights' \
             memory, not the time)"
        };
        format!(
            "{}, dot products at {speed:.2}x the f32 FMA rate on this core; {auto}",
            has.join(", ")
        )
    }
}

/// `module` with every float parameter in `dtype` (a cast on the device, one parameter at a
/// time).
pub fn cast_module<M: Module>(module: M, dtype: FloatDType) -> M {
    struct Cast(DType);
    impl ModuleMapper for Cast {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let dtype = self.0;
            param.map(|t| as_dtype(t, dtype))
        }
    }
    module.map(&mut Cast(dtype.into()))
}

/// `t` in `dtype` (a no-op when it already is).
pub fn as_dtype<const D: usize>(t: Tensor<D>, dtype: DType) -> Tensor<D> {
    if t.dtype() == dtype { t } else { t.cast(dtype) }
}

/// Errors from precision selection.
#[derive(Debug, thiserror::Error)]
pub enum PrecisionError {
    #[error("unknown precision '{0}': expected auto, f32, f16 or bf16")]
    Unknown(String),
    #[error("{PRECISION_ENV}='{0}' is not a precision: expected auto, f32, f16 or bf16")]
    UnknownEnv(String),
    #[error(
        "--precision f16 runs on the GPU; the CPU (flex) runs f32 or bf16 (use --precision \
         auto, f32 or bf16, or --device gpu)"
    )]
    NotOnCpu,
    #[error("--precision f16: {0} has no shader-f16 (use --precision auto or f32)")]
    NoShaderF16(String),
    #[error("--precision bf16 runs on the CPU; on the GPU use f16 (or auto)")]
    Bf16NotOnGpu,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(is_cpu: bool, shader_f16: bool) -> Selected {
        let mut s = crate::device::cpu();
        s.is_cpu = is_cpu;
        s.shader_f16 = shader_f16;
        s
    }

    #[test]
    fn auto_is_half_on_a_gpu_with_shader_f16_and_on_a_cpu_fast_at_bf16() {
        for fast in [false, true] {
            let on_cpu = crate::cpu::with_bf16_kernels(fast, || {
                Precision::Auto.resolve(&dev(true, false)).unwrap()
            });
            let bf16 = fast && crate::cpu::bf16_kernels_available();
            assert_eq!(on_cpu == Half::Bf16, bf16, "fast={fast}");
            assert_eq!(on_cpu == Half::Off, !bf16, "fast={fast}");
        }
        let cases = [
            (Precision::Auto, true, true, Some(Half::Off)),
            (Precision::Auto, false, false, Some(Half::Off)),
            (Precision::Auto, false, true, Some(Half::On)),
            (Precision::F32, false, true, Some(Half::Off)),
            (Precision::F16, false, true, Some(Half::On)),
            (Precision::F16, true, false, None),
            (Precision::F16, false, false, None),
            (Precision::Bf16, true, false, Some(Half::Bf16)),
            (Precision::Bf16, false, true, None),
        ];
        for (p, cpu, f16, want) in cases {
            let got = crate::cpu::with_bf16_kernels(false, || p.resolve(&dev(cpu, f16)).ok());
            assert_eq!(got, want, "{p} cpu={cpu} f16={f16}");
        }
    }

    #[test]
    fn names_parse_back_and_unknown_names_are_refused() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
        }
        assert_eq!("FP16".parse::<Precision>().unwrap(), Precision::F16);
        let e = "bf17".parse::<Precision>().unwrap_err().to_string();
        assert!(e.contains("bf17") && e.contains("f16"), "{e}");
    }

    #[test]
    fn only_checked_models_go_half() {
        assert_eq!(Half::On.for_model(Model::VaeDecoder), FloatDType::F16);
        assert_eq!(Half::On.for_model(Model::Unet), FloatDType::F16);
        assert_eq!(Half::On.for_model(Model::TextEncoder), FloatDType::F16);
        assert_eq!(Half::On.for_model(Model::Other), FloatDType::F32);
        assert_eq!(Half::Off.for_model(Model::VaeDecoder), FloatDType::F32);
        assert_eq!(Half::Bf16.for_model(Model::Unet), FloatDType::BF16);
        assert_eq!(Half::Bf16.for_model(Model::Other), FloatDType::F32);
    }
}
