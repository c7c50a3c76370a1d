//! A linear layer applied to `[..., d_in]` as one matrix product over all leading positions.
//!
//! Burn's `Linear` multiplies a `[batch, seq, d_in]` input by the weight broadcast over the
//! batch: one small GEMM per batch element (each re-packing the weight), and under autodiff a
//! weight gradient made of per-batch products summed afterwards. Flattening the leading
//! dimensions first makes each of forward, input gradient and weight gradient a single GEMM.
//! The reshapes are views; every backend takes this path.

use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// `linear(x)` with `x`'s leading dimensions flattened into one.
pub fn linear<B: Backend, const D: usize>(linear: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    if D <= 2 {
        return linear.forward(x);
    }
    let mut dims = x.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let out = linear.forward(x.reshape([rows, d_in]));
    dims[D - 1] = out.dims()[1];
    out.reshape(dims)
}
