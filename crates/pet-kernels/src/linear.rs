//! A linear layer applied to `[..., d_in]` as one matrix product over all leading positions, in
//! `f32` or, when the layer's weight is stored in bf16, as a bf16 product with `f32` sums.
//!
//! Burn's `Linear` multiplies a `[batch, seq, d_in]` input by the weight broadcast over the
//! batch: one small GEMM per batch element (each re-packing the weight), and under autodiff a
//! weight gradient made of per-batch products summed afterwards. Flattening the leading
//! dimensions first makes each of forward, input gradient and weight gradient a single GEMM.
//! The reshapes are views; every backend takes this path.
//!
//! A bf16 weight (pet's bf16 inference, `pet_core::precision`) selects [`bf16_product`]: on
//! burn-flex with a CPU that has AVX512-BF16, `pet_gemm`'s kernel; everywhere else the same
//! numerics composed from Burn operations.

use burn::backend::Flex;
use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, bf16};

use pet_gemm::Kernel;

use crate::dispatch::{Route, contiguous, flex, from_flex, recast, route, tensor_of, values};

/// `linear(x)` with `x`'s leading dimensions flattened into one.
pub fn linear<B: Backend, const D: usize>(linear: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let mut dims = x.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let x = x.reshape([rows, d_in]);
    let weight = linear.weight.val();
    let out = if weight.dtype() == DType::BF16 {
        bf16_product(x, weight, linear.bias.as_ref().map(Param::val))
    } else {
        linear.forward(x)
    };
    dims[D - 1] = out.dims()[1];
    out.reshape(dims)
}

/// `round_bf16(x) · weight + bias` with `f32` sums and an `f32` result.
///
/// # Shapes
/// - `x`: `[rows, d_in]`, `f32`
/// - `weight`: `[d_in, d_out]`, bf16
/// - `bias`: `[d_out]`, `f32`
/// - returns `[rows, d_out]`, `f32`
pub fn bf16_product<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    let x = match route(x) {
        Route::Flex(x) => match Kernel::detect() {
            Some(kernel) => {
                return recast(kernel_product(kernel, x, recast(weight), bias.map(recast)));
            }
            None => recast(x),
        },
        Route::Autodiff(x) => recast(x),
        Route::Composed(x) => x,
    };
    composed_product(x, weight, bias)
}

/// The product on `pet_gemm`'s kernel.
fn kernel_product(
    kernel: Kernel,
    x: Tensor<Flex, 2>,
    weight: Tensor<Flex, 2>,
    bias: Option<Tensor<Flex, 1>>,
) -> Tensor<Flex, 2> {
    let [m, k] = x.dims();
    let n = weight.dims()[1];
    let x = flex(x);
    let weight = contiguous(weight.into_primitive().tensor());
    let bias = bias.map(flex);
    let Some(weights) = weight.as_slice::<bf16>() else {
        unreachable!("a contiguous bf16 weight");
    };
    let out = kernel.matmul_bf16(values(&x), weights, bias.as_ref().map(values), m, k, n);
    from_flex(tensor_of(out, [m, n].into()))
}

/// [`bf16_product`] from Burn operations: `x` rounded through bf16, then an `f32` product.
fn composed_product<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    let x = x.cast(DType::BF16).cast(DType::F32);
    let out = x.matmul(weight.cast(DType::F32));
    match bias {
        Some(bias) => out + bias.unsqueeze(),
        None => out,
    }
}
