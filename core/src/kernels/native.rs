//! Our WGSL kernels launched straight through wgpu, on the device and queue burn computes on.
//!
//! burn-wgpu's template-kernel API hands WGSL text to burn's compiler, and cubecl's SPIR-V
//! compiler (what burn runs on Vulkan) has no text passthrough. wgpu itself takes WGSL modules
//! on every backend, so on such a device the kernel becomes a wgpu compute pipeline of our own
//! (built once per kernel variant and device), bound to the very buffers burn's tensors live in
//! (`get_resource`: the buffer, offset and size of each handle), and submitted to burn's queue
//! after burn's pending work is flushed: the queue orders both, so the kernel reads what burn
//! wrote and burn's later work reads what the kernel wrote.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{Mutex, OnceLock};

use burn::backend::wgpu::{CubeTensor, KernelSource, wgpu};
use cubecl::CubeCount;
use cubecl::server::Handle;
use cubecl::wgpu::{AutoCompiler, WgpuServer};

use super::Wgsl;

type Pipelines = HashMap<(String, &'static str, bool), wgpu::ComputePipeline>;

fn pipelines() -> &'static Mutex<Pipelines> {
    static P: OnceLock<Mutex<Pipelines>> = OnceLock::new();
    P.get_or_init(Default::default)
}

fn pipeline(device: &wgpu::Device, kernel: &Wgsl) -> wgpu::ComputePipeline {
    let key = (format!("{device:?}"), kernel.name, kernel.half);
    let mut map = pipelines().lock().unwrap_or_else(|e| e.into_inner());
    map.entry(key)
        .or_insert_with(|| {
            let source = kernel.source().complete();
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            })
        })
        .clone()
}

/// Runs `kernel` over `count` workgroups with `buffers` bound in order at `@group(0)`.
pub(super) fn launch(like: &CubeTensor, kernel: &Wgsl, count: CubeCount, buffers: &[Handle]) {
    let Some((device, queue)) = crate::gpu::queue_of(like) else {
        panic!(
            "the `{}` kernel runs on a device burn compiles to SPIR-V, which was not opened \
             through clearpaint_core::gpu::open (no wgpu queue to launch it on)",
            kernel.name
        );
    };
    let CubeCount::Static(x, y, z) = count else {
        unreachable!("our kernels launch static grids")
    };
    let resources: Vec<_> = buffers
        .iter()
        .map(|h| {
            like.client
                .get_resource::<WgpuServer<AutoCompiler>>(h.clone())
                .expect("a wgpu buffer of this device")
        })
        .collect();
    // burn's recorded work (what wrote our inputs) goes to the queue first.
    like.client.flush().expect("flush burn's queued work");
    let pipeline = pipeline(&device, kernel);
    let entries: Vec<wgpu::BindGroupEntry> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let r = r.resource();
            // Storage bindings come in whole words; an odd count of f16 values ends mid-word
            // (the pool's allocations are word-aligned, so the word is ours to bind).
            let size = r.size.next_multiple_of(4).min(r.buffer.size() - r.offset);
            wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &r.buffer,
                    offset: r.offset,
                    size: NonZeroU64::new(size),
                }),
            }
        })
        .collect();
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(kernel.name),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some(kernel.name),
    });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(kernel.name),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(x, y, z);
    }
    queue.submit([encoder.finish()]);
    // The buffers stay reserved until the submission holds them.
    drop(resources);
}
