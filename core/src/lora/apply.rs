//! Adding ΔW to a module's weights: a mapper that walks the module with the same paths the
//! weight loader uses, turns each Linear / Conv2d weight's path into its diffusers module name
//! in `_` form, and adds that layer's ΔW (transposed for burn's `[in, out]` Linear). The
//! module is a copy (burn tensors are shared until written), so the base model is untouched.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};

use super::delta::HostTensor;
use crate::weights::ModulePath;

/// ΔW per layer (module name in `_` form), in PyTorch's layout and already weighted.
pub type Deltas = BTreeMap<String, HostTensor>;

/// What patching did: the layers used and those whose ΔW did not fit.
#[derive(Debug, Default)]
pub struct PatchReport {
    pub used: BTreeSet<String>,
    pub mismatched: Vec<String>,
}

struct Patcher<'a> {
    deltas: &'a Deltas,
    to_diffusers: fn(&str) -> String,
    at: ModulePath,
    report: PatchReport,
}

/// `module` with every matching layer's ΔW added; `to_diffusers` maps a module path of ours to
/// the diffusers module name.
pub fn patch<M: Module>(
    module: M,
    deltas: &Deltas,
    to_diffusers: fn(&str) -> String,
) -> (M, PatchReport) {
    let mut p = Patcher {
        deltas,
        to_diffusers,
        at: ModulePath::default(),
        report: PatchReport::default(),
    };
    let module = module.map(&mut p);
    (module, p.report)
}

/// ΔW in the parameter's own layout, or why it does not fit. A 4-input-channel ΔW on a
/// 9-channel `conv_in` (a LoRA trained on a plain SD model, used with an inpainting one) fills
/// the first 4 channels, as A1111 does.
fn fit(d: &HostTensor, model_shape: &[usize], linear: bool) -> Result<Vec<f32>, String> {
    let n: usize = model_shape.iter().product();
    if linear {
        let (i, o) = (model_shape[0], model_shape[1]);
        if d.values.len() != n {
            return Err(format!("ΔW {:?} for a Linear [{o}, {i}]", d.shape));
        }
        let mut t = vec![0f32; n];
        for r in 0..o {
            for c in 0..i {
                t[c * o + r] = d.values[r * i + c];
            }
        }
        return Ok(t);
    }
    if d.values.len() == n {
        return Ok(d.values.clone());
    }
    if let [o, 9, kh, kw] = model_shape[..] {
        let k = kh * kw;
        if d.values.len() == o * 4 * k {
            let mut t = vec![0f32; n];
            for r in 0..o {
                t[r * 9 * k..r * 9 * k + 4 * k]
                    .copy_from_slice(&d.values[r * 4 * k..(r + 1) * 4 * k]);
            }
            return Ok(t);
        }
    }
    Err(format!("ΔW {:?} for a weight {model_shape:?}", d.shape))
}

impl ModuleMapper for Patcher<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.at.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.at.exit(container_type);
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let kind = self.at.container();
        let linear = kind == "Struct:Linear";
        let path = &self.at.path;
        if path.last().map(String::as_str) != Some("weight") || !(linear || kind == "Struct:Conv2d")
        {
            return param;
        }
        let module = path[..path.len() - 1].join(".");
        // The reference's name, or ours (text-encoder LoRAs saved with transformers 5 names
        // have no `text_model.` prefix).
        let Some((name, d)) = [(self.to_diffusers)(&module), module]
            .into_iter()
            .map(|m| m.replace('.', "_"))
            .find_map(|n| self.deltas.get(&n).map(|d| (n, d)))
        else {
            return param;
        };
        self.report.used.insert(name.clone());
        let shape: Vec<usize> = param.lazy_shape().to_vec();
        match fit(d, &shape, linear && D == 2) {
            Ok(values) => {
                let device = param.lazy_device();
                let delta = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
                param.map(|w| w + delta)
            }
            Err(e) => {
                self.report.mismatched.push(format!("{name}: {e}"));
                param
            }
        }
    }
}
