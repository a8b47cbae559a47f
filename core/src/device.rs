//! Choosing where models run.
//!
//! * `auto`: a real GPU adapter through wgpu when the machine has one (discrete, integrated or
//!   virtual), otherwise the `flex` CPU backend. Software adapters (lavapipe, SwiftShader) are
//!   never picked by `auto`: on a CPU, flex is two orders of magnitude faster than a software
//!   Vulkan driver.
//! * `gpu`: wgpu on any adapter, software ones included (best hardware adapter first).
//! * `cpu`: the `flex` CPU backend.
//!
//! The choice comes from the `--device` flag or the `CLEARPAINT_DEVICE` environment variable.

use std::fmt;
use std::str::FromStr;

use burn::backend::wgpu::wgpu;
use burn::tensor::{Device, DeviceKind};

/// Environment variable that selects the device when no flag is given.
pub const DEVICE_ENV: &str = "CLEARPAINT_DEVICE";

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A hardware GPU when there is one, else the CPU.
    #[default]
    Auto,
    /// wgpu on any adapter, including software ones.
    Gpu,
    /// burn's `flex` CPU backend.
    Cpu,
}

impl DeviceChoice {
    /// All choices, in the order they are documented.
    pub const ALL: [DeviceChoice; 3] = [DeviceChoice::Auto, DeviceChoice::Gpu, DeviceChoice::Cpu];

    /// The name used on the command line and in `CLEARPAINT_DEVICE`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Gpu => "gpu",
            DeviceChoice::Cpu => "cpu",
        }
    }

    /// The choice named by `CLEARPAINT_DEVICE`, or `auto` when it is unset or empty.
    pub fn from_env() -> Result<DeviceChoice, DeviceError> {
        match std::env::var(DEVICE_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse().map_err(|e: DeviceError| match e {
                DeviceError::UnknownChoice(v) => DeviceError::UnknownEnvChoice(v),
                other => other,
            }),
            _ => Ok(DeviceChoice::Auto),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "gpu" | "wgpu" => Ok(DeviceChoice::Gpu),
            "cpu" | "flex" => Ok(DeviceChoice::Cpu),
            _ => Err(DeviceError::UnknownChoice(s.to_string())),
        }
    }
}

/// Errors from device selection.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device '{0}': expected auto, gpu or cpu")]
    UnknownChoice(String),
    #[error("{DEVICE_ENV}='{0}' is not a device: expected auto, gpu or cpu")]
    UnknownEnvChoice(String),
    #[error(
        "no wgpu adapter found (no Vulkan/Metal/DX12/GL driver answered); install a GPU driver, \
         or Mesa's lavapipe (Debian: mesa-vulkan-drivers) for a software one, or use --device cpu"
    )]
    NoAdapter,
    #[error("{adapter}: cannot start the GPU runtime: {reason}")]
    Open { adapter: String, reason: String },
}

/// The kind of a wgpu adapter, as wgpu reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    DiscreteGpu,
    IntegratedGpu,
    VirtualGpu,
    /// A software rasterizer such as lavapipe / llvmpipe or SwiftShader.
    Cpu,
    Other,
}

impl AdapterKind {
    fn from_wgpu(t: wgpu::DeviceType) -> Self {
        match t {
            wgpu::DeviceType::DiscreteGpu => AdapterKind::DiscreteGpu,
            wgpu::DeviceType::IntegratedGpu => AdapterKind::IntegratedGpu,
            wgpu::DeviceType::VirtualGpu => AdapterKind::VirtualGpu,
            wgpu::DeviceType::Cpu => AdapterKind::Cpu,
            wgpu::DeviceType::Other => AdapterKind::Other,
        }
    }

    /// A real (hardware) GPU.
    pub fn is_hardware(self) -> bool {
        matches!(
            self,
            AdapterKind::DiscreteGpu | AdapterKind::IntegratedGpu | AdapterKind::VirtualGpu
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            AdapterKind::DiscreteGpu => "discrete GPU",
            AdapterKind::IntegratedGpu => "integrated GPU",
            AdapterKind::VirtualGpu => "virtual GPU",
            AdapterKind::Cpu => "software (CPU)",
            AdapterKind::Other => "other",
        }
    }
}

/// One wgpu adapter found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    pub name: String,
    /// Graphics API: Vulkan, Metal, Dx12, Gl.
    pub backend: String,
    pub kind: AdapterKind,
    pub driver: String,
    /// The burn device that runs on this adapter (index among adapters of the same kind).
    pub device_kind: DeviceKind,
    /// The largest storage buffer one kernel can bind (bytes): no single tensor may be larger.
    pub max_buffer_bytes: u64,
    /// Whether shaders can compute in f16 (wgpu's `SHADER_F16`).
    pub shader_f16: bool,
}

/// Lists the wgpu adapters of every native graphics API on this machine.
///
/// Adapters are found the way the wgpu backend finds them, so the index in `device_kind`
/// addresses the same adapter.
pub fn list_adapters() -> Vec<AdapterInfo> {
    // The native APIs burn's wgpu runtime computes on (GL has no compute path it uses).
    let backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    let mut out: Vec<AdapterInfo> = Vec::new();
    for backend in backends.iter() {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: backend,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapters = futures_lite::future::block_on(instance.enumerate_adapters(backend));
        for adapter in adapters {
            let info = adapter.get_info();
            let limits = adapter.limits();
            let max_buffer_bytes = limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size);
            let kind = AdapterKind::from_wgpu(info.device_type);
            let same_kind = out
                .iter()
                .filter(|a| a.kind == kind && a.backend == format!("{:?}", info.backend))
                .count();
            let device_kind = match kind {
                AdapterKind::DiscreteGpu => DeviceKind::DiscreteGpu(same_kind),
                AdapterKind::IntegratedGpu => DeviceKind::IntegratedGpu(same_kind),
                AdapterKind::VirtualGpu => DeviceKind::VirtualGpu(same_kind),
                AdapterKind::Cpu => DeviceKind::Cpu,
                AdapterKind::Other => DeviceKind::DefaultDevice,
            };
            out.push(AdapterInfo {
                name: info.name.clone(),
                backend: format!("{:?}", info.backend),
                kind,
                driver: [info.driver.as_str(), info.driver_info.as_str()]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
                device_kind,
                max_buffer_bytes,
                shader_f16: adapter.features().contains(wgpu::Features::SHADER_F16),
            });
        }
    }
    out
}

/// Where the work will run, and why.
#[derive(Debug, Clone)]
pub struct Selected {
    pub device: Device,
    /// Human-readable description, e.g. "cpu (flex)" or "gpu: NVIDIA H200 (Vulkan)".
    pub description: String,
    /// True when the device is the flex CPU backend.
    pub is_cpu: bool,
    /// The largest single tensor the device can hold (bytes); large decodes are tiled to fit.
    pub max_tensor_bytes: u64,
    /// Whether the device computes in f16 (see [`crate::precision`]).
    pub shader_f16: bool,
    /// Whether half precision is on for this run ([`Selected::with_precision`]); off unless
    /// asked for.
    pub half: crate::precision::Half,
}

/// Largest single tensor on the CPU: a soft limit that keeps a whole-image decode's peak
/// memory within a laptop's RAM (the VAE tiles beyond it).
pub const CPU_MAX_TENSOR_BYTES: u64 = 4 << 30;

/// The decision `choice` leads to on a machine with `adapters`, without creating a device.
/// Returns the index into `adapters` for a wgpu device, or `None` for the CPU.
pub fn decide(
    choice: DeviceChoice,
    adapters: &[AdapterInfo],
) -> Result<Option<usize>, DeviceError> {
    let rank = |a: &AdapterInfo| match a.kind {
        AdapterKind::DiscreteGpu => 0,
        AdapterKind::IntegratedGpu => 1,
        AdapterKind::VirtualGpu => 2,
        AdapterKind::Other => 3,
        AdapterKind::Cpu => 4,
    };
    let best = |hardware_only: bool| {
        adapters
            .iter()
            .enumerate()
            .filter(|(_, a)| !hardware_only || a.kind.is_hardware())
            .min_by_key(|(i, a)| (rank(a), *i))
            .map(|(i, _)| i)
    };
    match choice {
        DeviceChoice::Cpu => Ok(None),
        DeviceChoice::Auto => Ok(best(true)),
        DeviceChoice::Gpu => best(false).map(Some).ok_or(DeviceError::NoAdapter),
    }
}

/// Creates the device for `choice`.
pub fn select(choice: DeviceChoice) -> Result<Selected, DeviceError> {
    if choice == DeviceChoice::Cpu {
        return Ok(cpu());
    }
    let adapters = list_adapters();
    Ok(match decide(choice, &adapters)? {
        None => cpu(),
        Some(i) => {
            let a = &adapters[i];
            let (device, _) =
                crate::gpu::open(&a.device_kind).map_err(|reason| DeviceError::Open {
                    adapter: a.name.clone(),
                    reason,
                })?;
            Selected {
                device,
                description: format!("gpu: {} ({}, {})", a.name, a.backend, a.kind.name()),
                is_cpu: false,
                max_tensor_bytes: a.max_buffer_bytes,
                shader_f16: a.shader_f16,
                half: crate::precision::Half::Off,
            }
        }
    })
}

/// The flex CPU device.
pub fn cpu() -> Selected {
    Selected {
        device: Device::flex(),
        description: "cpu (flex)".to_string(),
        is_cpu: true,
        max_tensor_bytes: CPU_MAX_TENSOR_BYTES,
        shader_f16: false,
        half: crate::precision::Half::Off,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, kind: AdapterKind) -> AdapterInfo {
        AdapterInfo {
            name: name.into(),
            backend: "Vulkan".into(),
            kind,
            driver: String::new(),
            device_kind: DeviceKind::DefaultDevice,
            max_buffer_bytes: 128 << 20,
            shader_f16: false,
        }
    }

    #[test]
    fn auto_skips_software_adapters() {
        let lavapipe = [adapter("llvmpipe", AdapterKind::Cpu)];
        assert_eq!(decide(DeviceChoice::Auto, &lavapipe).unwrap(), None);
        assert_eq!(decide(DeviceChoice::Gpu, &lavapipe).unwrap(), Some(0));
        assert_eq!(decide(DeviceChoice::Cpu, &lavapipe).unwrap(), None);
    }

    #[test]
    fn auto_prefers_discrete_over_integrated() {
        let both = [
            adapter("llvmpipe", AdapterKind::Cpu),
            adapter("iGPU", AdapterKind::IntegratedGpu),
            adapter("dGPU", AdapterKind::DiscreteGpu),
        ];
        assert_eq!(decide(DeviceChoice::Auto, &both).unwrap(), Some(2));
        assert_eq!(decide(DeviceChoice::Gpu, &both).unwrap(), Some(2));
    }

    #[test]
    fn gpu_without_adapter_is_an_error() {
        assert!(matches!(
            decide(DeviceChoice::Gpu, &[]),
            Err(DeviceError::NoAdapter)
        ));
        assert_eq!(decide(DeviceChoice::Auto, &[]).unwrap(), None);
    }

    #[test]
    fn parses_choices() {
        assert_eq!("GPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Gpu);
        assert_eq!("flex".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        let err = "cuda".parse::<DeviceChoice>().unwrap_err().to_string();
        assert!(
            err.contains("cuda") && err.contains("auto, gpu or cpu"),
            "{err}"
        );
    }
}
