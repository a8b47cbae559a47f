//! The encoder's output distribution over latents.

use burn::tensor::Tensor;

use crate::noise::gaussian_noise;

/// The posterior `N(mean, exp(logvar))` over latents.
#[derive(Debug, Clone)]
pub struct DiagonalGaussian {
    pub mean: Tensor<4>,
    /// Clamped to [-30, 20].
    pub logvar: Tensor<4>,
}

impl DiagonalGaussian {
    pub fn mode(&self) -> Tensor<4> {
        self.mean.clone()
    }

    pub fn std(&self) -> Tensor<4> {
        (self.logvar.clone() * 0.5).exp()
    }

    /// `mean + std * eps` for a given standard-normal `eps`.
    pub fn sample_with(&self, eps: Tensor<4>) -> Tensor<4> {
        self.mean.clone() + self.std() * eps
    }

    /// A sample drawn with `seed` (host-side RNG, so the same seed gives the same noise on
    /// every device).
    pub fn sample(&self, seed: u64) -> Tensor<4> {
        let dims = self.mean.dims();
        let eps = gaussian_noise(dims, seed, &self.mean.device());
        self.sample_with(eps)
    }
}
