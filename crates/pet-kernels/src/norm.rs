//! A layer-norm module over the fused kernel, standing in for `burn::nn::LayerNorm` (whose
//! epsilon is private, so its parameters cannot be handed to [`layer_norm`] from outside).
//! Parameter names (`gamma`, `beta`) are Burn's, so records and parameter paths are unchanged.

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::layer_norm::layer_norm;

/// Layer normalization over the last dimension with a learned scale and shift.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// Scale, `[d_model]`, initialized to ones.
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift, `[d_model]`, initialized to zeros.
    pub beta: Param<Tensor<B, 1>>,
    /// Added to the variance.
    pub epsilon: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// The identity norm (`gamma` ones, `beta` zeros) over `d_model` features.
    pub fn new(d_model: usize, epsilon: f64, device: &B::Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([d_model], device)),
            beta: Param::from_tensor(Tensor::zeros([d_model], device)),
            epsilon,
        }
    }

    /// `(x - mean) / sqrt(var + epsilon) * gamma + beta` over the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        layer_norm(x, self.gamma.val(), self.beta.val(), self.epsilon)
    }
}
