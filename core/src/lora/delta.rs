//! A layer's weight change ΔW from its LoRA tensors, as A1111 computes it
//! (`extensions-builtin/Lora/network_lora.py`, `network_hada.py`, `network_lokr.py`,
//! `lyco_helpers.py`): ΔW in PyTorch's layout (`[out, in]`, `[out, in, kh, kw]`), scaled by
//! `scale` if the file has one, else `alpha / dim` when both are known, else 1.
//!
//! - LoRA / LoCon: `up @ down` (each flattened to 2-D), or with `lora_mid` the CP
//!   decomposition `Σ mid[n,m,k,l] up[i,n] down[m,j]`; dim = rows of `down`.
//! - LoHa: `(w1_a @ w1_b) ⊙ (w2_a @ w2_b)`, or with `hada_t1/t2` each factor rebuilt from its
//!   Tucker core; dim = rows of `w1_b`.
//! - LoKr: `kron(w1, w2)`, each a full matrix or `a @ b` (w2 also from a Tucker core `lokr_t2`);
//!   dim = rows of `w1_b`, else of `w2_b`.

use std::collections::BTreeMap;

/// A host tensor: values and shape (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub values: Vec<f32>,
    pub shape: Vec<usize>,
}

impl HostTensor {
    fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    fn cols(&self) -> usize {
        self.values.len() / self.rows().max(1)
    }
}

/// The tensors of one layer, by part name (`lora_down.weight`, `hada_w1_a`, …).
pub type Parts = BTreeMap<String, HostTensor>;

/// The largest ΔW we build (elements): SD's largest layer has 14.7M, SDXL's 29.5M. A hostile
/// file claiming more is refused before anything is allocated.
pub const MAX_DELTA: usize = 1 << 26;

/// A zeroed buffer of `dims`' product, or an error when that is over [`MAX_DELTA`].
fn zeros(dims: &[usize]) -> Result<Vec<f32>, String> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_DELTA)
        .map(|n| vec![0f32; n])
        .ok_or_else(|| format!("a ΔW of {dims:?} is larger than any SD layer"))
}

/// `a [m, k] @ b [k, n]`.
pub fn matmul(a: &[f32], m: usize, k: usize, b: &[f32], n: usize) -> Result<Vec<f32>, String> {
    if a.len() != m * k || b.len() != k * n {
        return Err("matmul shapes".into());
    }
    let mut out = zeros(&[m, n])?;
    if m == 0 || n == 0 || k == 0 {
        return Ok(out);
    }
    // SAFETY: out is m x n (row stride n), a is m x k (row stride k), b is k x n (row stride
    // n), all contiguous and of exactly those lengths (asserted above).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
    Ok(out)
}

fn get<'a>(parts: &'a Parts, name: &str) -> Result<&'a HostTensor, String> {
    parts.get(name).ok_or_else(|| format!("no {name}"))
}

/// `a @ b` with both flattened to 2-D (`rebuild_conventional`).
fn conventional(a: &HostTensor, b: &HostTensor) -> Result<Vec<f32>, String> {
    if a.cols() != b.rows() {
        return Err(format!("{:?} and {:?} do not multiply", a.shape, b.shape));
    }
    matmul(&a.values, a.rows(), a.cols(), &b.values, b.cols())
}

/// `einsum('i j k l, j r -> i r k l', t, wb)` then `einsum('i j k l, i r -> r j k l', ·, wa)`
/// (`make_weight_cp`): `[wa.cols, wb.cols, k, l]`.
fn tucker(t: &HostTensor, wa: &HostTensor, wb: &HostTensor) -> Result<HostTensor, String> {
    let [i, j, k, l] = t.shape[..] else {
        return Err(format!("Tucker core of shape {:?}", t.shape));
    };
    if wa.rows() != i || wb.rows() != j {
        return Err(format!(
            "Tucker core {:?} does not fit {:?} and {:?}",
            t.shape, wa.shape, wb.shape
        ));
    }
    let (p, q, kl) = (wa.cols(), wb.cols(), k * l);
    let mut out = zeros(&[p, q, kl])?;
    for s in 0..kl {
        // core[i, j] at this kernel position; out[:, :, s] = wa^T @ core @ wb
        let core: Vec<f32> = (0..i * j).map(|x| t.values[x * kl + s]).collect();
        let cb = matmul(&core, i, j, &wb.values, q)?;
        let wat: Vec<f32> = (0..p * i).map(|x| wa.values[(x % i) * p + x / i]).collect();
        let r = matmul(&wat, p, i, &cb, q)?;
        for (x, v) in r.into_iter().enumerate() {
            out[x * kl + s] = v;
        }
    }
    Ok(HostTensor {
        values: out,
        shape: vec![p, q, k, l],
    })
}

/// `einsum('n m k l, i n, m j -> i j k l', mid, up, down)` (`rebuild_cp_decomposition`).
fn cp(mid: &HostTensor, up: &HostTensor, down: &HostTensor) -> Result<HostTensor, String> {
    // up [i, n] is wa^T with wa [n, i]; down [m, j] is wb.
    let wa = HostTensor {
        values: (0..up.values.len())
            .map(|x| up.values[(x % up.rows()) * up.cols() + x / up.rows()])
            .collect(),
        shape: vec![up.cols(), up.rows()],
    };
    let wb = HostTensor {
        values: down.values.clone(),
        shape: vec![down.rows(), down.cols()],
    };
    tucker(mid, &wa, &wb)
}

/// Kronecker product of `[a, b]` and `[c, d]`: `[a c, b d]`.
fn kron(w1: &HostTensor, w2: &HostTensor) -> Result<Vec<f32>, String> {
    let (a, b, c, d) = (w1.rows(), w1.cols(), w2.rows(), w2.cols());
    let mut out = zeros(&[a, b, c, d])?;
    for i in 0..a {
        for j in 0..b {
            let s = w1.values[i * b + j];
            for k in 0..c {
                let row = (i * c + k) * b * d + j * d;
                for (o, v) in out[row..row + d]
                    .iter_mut()
                    .zip(&w2.values[k * d..(k + 1) * d])
                {
                    *o = s * v;
                }
            }
        }
    }
    Ok(out)
}

/// ΔW of one layer (unscaled) and the dim that `alpha` divides.
fn raw(parts: &Parts) -> Result<(Vec<f32>, Option<usize>), String> {
    if let Some(down) = parts.get("lora_down.weight") {
        let up = get(parts, "lora_up.weight")?;
        let d = match parts.get("lora_mid.weight") {
            Some(mid) => cp(mid, up, down)?.values,
            None => conventional(up, down)?,
        };
        return Ok((d, Some(down.rows())));
    }
    if parts.contains_key("hada_w1_a") {
        let factor = |a: &str, b: &str, t: &str| -> Result<Vec<f32>, String> {
            let (a, b) = (get(parts, a)?, get(parts, b)?);
            match parts.get(t) {
                Some(t) => Ok(tucker(t, a, b)?.values),
                None => conventional(a, b),
            }
        };
        let f1 = factor("hada_w1_a", "hada_w1_b", "hada_t1")?;
        let f2 = factor("hada_w2_a", "hada_w2_b", "hada_t2")?;
        if f1.len() != f2.len() {
            return Err("LoHa factors of different sizes".into());
        }
        let dim = get(parts, "hada_w1_b")?.rows();
        return Ok((f1.iter().zip(&f2).map(|(a, b)| a * b).collect(), Some(dim)));
    }
    if parts.keys().any(|k| k.starts_with("lokr_")) {
        return lokr(parts);
    }
    Err("no lora_down, hada_w1_a or lokr_w1 tensor".into())
}

fn lokr(parts: &Parts) -> Result<(Vec<f32>, Option<usize>), String> {
    let full = |w: &str, a: &str, b: &str| -> Result<HostTensor, String> {
        if let Some(w) = parts.get(w) {
            return Ok(w.clone());
        }
        let (a, b) = (get(parts, a)?, get(parts, b)?);
        Ok(HostTensor {
            values: conventional(a, b)?,
            shape: vec![a.rows(), b.cols()],
        })
    };
    let w1 = full("lokr_w1", "lokr_w1_a", "lokr_w1_b")?;
    let w2 = match parts.get("lokr_t2") {
        Some(t) if !parts.contains_key("lokr_w2") => {
            let t = tucker(t, get(parts, "lokr_w2_a")?, get(parts, "lokr_w2_b")?)?;
            let rows = t.shape[0];
            HostTensor {
                shape: vec![rows, t.values.len() / rows.max(1)],
                values: t.values,
            }
        }
        _ => full("lokr_w2", "lokr_w2_a", "lokr_w2_b")?,
    };
    let dim = parts
        .get("lokr_w2_b")
        .or(parts.get("lokr_w1_b"))
        .map(|b| b.rows());
    Ok((kron(&w1, &w2)?, dim))
}

/// The layer's ΔW, scaled as A1111 scales it (before the user's weight).
pub fn delta(parts: &Parts) -> Result<Vec<f32>, String> {
    if parts.contains_key("dora_scale") {
        return Err("DoRA layers (dora_scale) are not supported".into());
    }
    let (d, dim) = raw(parts)?;
    let scalar = |k: &str| parts.get(k).and_then(|t| t.values.first().copied());
    let scale = match (scalar("scale"), scalar("alpha"), dim) {
        (Some(s), _, _) => s,
        (None, Some(a), Some(dim)) if dim > 0 => a / dim as f32,
        _ => 1.0,
    };
    let d: Vec<f32> = d.into_iter().map(|v| v * scale).collect();
    if !scale.is_finite() || d.iter().any(|v| !v.is_finite()) {
        return Err(format!("non-finite values (scale {scale})"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(values: &[f32], shape: &[usize]) -> HostTensor {
        HostTensor {
            values: values.to_vec(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn lora_is_up_times_down_times_alpha_over_rank() {
        let mut p = Parts::new();
        p.insert("lora_up.weight".into(), t(&[1., 2., 3., 4.], &[2, 2]));
        p.insert(
            "lora_down.weight".into(),
            t(&[1., 0., 0., 1., 1., 1.], &[2, 3]),
        );
        p.insert("alpha".into(), t(&[1.0], &[]));
        // up @ down = [[3,2,2],[7,4,4]], x 1/2
        assert_eq!(delta(&p).unwrap(), vec![1.5, 1.0, 1.0, 3.5, 2.0, 2.0]);
    }

    #[test]
    fn kron_is_blockwise() {
        let a = t(&[1., 2.], &[1, 2]);
        let b = t(&[1., 10., 100., 1000.], &[2, 2]);
        assert_eq!(
            kron(&a, &b).unwrap(),
            vec![1., 10., 2., 20., 100., 1000., 200., 2000.]
        );
    }
}
