//! The wgpu runtime under burn: each adapter is opened once per process with
//! `init_with_setup`, which hands back the wgpu device and queue burn computes on. They are kept
//! here for two reasons:
//!
//! * burn-wgpu's `vulkan` feature compiles burn's own kernels to SPIR-V on every Vulkan adapter
//!   (cubecl's SPIR-V compiler: cooperative matrices where the driver has them), and that
//!   compiler takes no WGSL text, so our hand-written kernels (`shaders/`) are launched on the
//!   same device and queue directly (`kernels::native`);
//! * `clearpaint devices` says per adapter which compiler burn runs and whether the driver
//!   offers cooperative matrices.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use burn::backend::wgpu::{CubeTensor, Wgpu, WgpuSetup, wgpu};
use burn::tensor::{Device, DeviceKind, Tensor};

/// One opened adapter: burn's device and the wgpu handles it computes on.
#[derive(Clone)]
struct Opened {
    device: Device,
    setup: WgpuSetup,
}

fn opened() -> &'static Mutex<HashMap<DeviceKind, Opened>> {
    static OPENED: OnceLock<Mutex<HashMap<DeviceKind, Opened>>> = OnceLock::new();
    OPENED.get_or_init(Default::default)
}

/// The wgpu device and queue of every opened runtime, by the runtime's service id.
fn queues() -> &'static Mutex<HashMap<String, (wgpu::Device, wgpu::Queue)>> {
    static QUEUES: OnceLock<Mutex<HashMap<String, (wgpu::Device, wgpu::Queue)>>> = OnceLock::new();
    QUEUES.get_or_init(Default::default)
}

fn cube(device: &Device) -> Option<CubeTensor> {
    Tensor::<1>::zeros([1], device)
        .try_into_primitive::<Wgpu>()
        .ok()
}

/// Opens burn's wgpu runtime on the adapter `kind` names (once per process: later calls return
/// the same device) and returns the device with the wgpu handles it runs on.
pub fn open(kind: &DeviceKind) -> Result<(Device, WgpuSetup), String> {
    let mut map = opened().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(o) = map.get(kind) {
        return Ok((o.device.clone(), o.setup.clone()));
    }
    let (device, setup) = Device::wgpu_options()
        .device_kind(kind.clone())
        .init_with_setup()
        .map_err(|e| e.to_string())?;
    if let Some(t) = cube(&device) {
        queues()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(service_key(&t), (setup.device.clone(), setup.queue.clone()));
    }
    map.insert(
        kind.clone(),
        Opened {
            device: device.clone(),
            setup: setup.clone(),
        },
    );
    Ok((device, setup))
}

fn service_key(t: &CubeTensor) -> String {
    format!("{:?}", t.client.service_id())
}

/// The wgpu device and queue `t`'s runtime computes on, when it was opened through [`open`].
pub(crate) fn queue_of(t: &CubeTensor) -> Option<(wgpu::Device, wgpu::Queue)> {
    queues()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&service_key(t))
        .cloned()
}

/// The shader compiler burn's runtime uses for its own kernels on a wgpu tensor's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiler {
    /// cubecl's SPIR-V compiler (Vulkan, with burn-wgpu's `vulkan` feature).
    SpirV,
    /// cubecl's WGSL compiler (Metal, DX12, or Vulkan drivers the SPIR-V path declines).
    Wgsl,
    /// Metal Shading Language (not built in today).
    Msl,
}

impl Compiler {
    pub fn name(self) -> &'static str {
        match self {
            Compiler::SpirV => "SPIR-V",
            Compiler::Wgsl => "WGSL",
            Compiler::Msl => "MSL",
        }
    }
}

pub(crate) fn compiler_of(t: &CubeTensor) -> Compiler {
    match t.client.name() {
        n if n.contains("spirv") => Compiler::SpirV,
        n if n.contains("msl") => Compiler::Msl,
        _ => Compiler::Wgsl,
    }
}

/// What burn's runtime on a wgpu device compiles to and which matrix units it can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub compiler: Compiler,
    /// Cooperative-matrix shapes the driver offers (`VK_KHR_cooperative_matrix`), as
    /// `MxNxK a*b->c` strings; empty where there are none (WGSL has none at all).
    pub cooperative_matrices: Vec<String>,
}

/// The runtime of `device`, or `None` for a device that is not on wgpu.
pub fn runtime(device: &Device) -> Option<Runtime> {
    let t = cube(device)?;
    let cooperative_matrices = t
        .client
        .properties()
        .features
        .matmul
        .cmma
        .iter()
        .map(|c| {
            format!(
                "{}x{}x{} {}*{}->{}",
                c.m, c.n, c.k, c.a_type, c.b_type, c.cd_type
            )
        })
        .collect();
    Some(Runtime {
        compiler: compiler_of(&t),
        cooperative_matrices,
    })
}
