//! A linear layer applied to `[..., d_in]` as one matrix product over all leading positions, in
//! `f32` or, when the layer's weight is stored in bf16, as a bf16 product with `f32` sums.
//!
//! Burn's `Linear` multiplies a `[batch, seq, d_in]` input by the weight broadcast over the
//! batch: one small GEMM per batch element (each re-packing the weight), and under autodiff a
//! weight gradient made of per-batch products summed afterwards. Flattening the leading
//! dimensions first makes each of forward, input gradient and weight gradient a single GEMM.
//! The reshapes are views; every backend takes this path.
//!
//! On burn-flex with a CPU that `pet_gemm` runs on, the product is `FusedLinear`: forward and
//! (under autodiff) backward on pet-gemm's kernel, the bias added as the kernel's starting sums
//! and its gradient summed in the same pass that needs none of the weight's. A bf16 weight
//! (pet's bf16 inference, `pet_core::precision`) makes the kernel round the activations to bf16
//! too. Everywhere else the same numerics are composed from Burn operations.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, bf16};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use pet_gemm::{Kernel, Lhs, Operands, Rows, Source, Strided};

use crate::dispatch::{FlexAutodiff, Route, flex, from_flex, recast, route, tensor_of, values};
use crate::fused::{FusedOp, infer, primitive, record, wrap};

/// `linear(x)` with `x`'s leading dimensions flattened into one.
pub fn linear<B: Backend, const D: usize>(linear: &Linear<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    let mut dims = x.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let x = x.reshape([rows, d_in]);
    let out = product(x, linear.weight.val(), linear.bias.as_ref().map(Param::val));
    dims[D - 1] = out.dims()[1];
    out.reshape(dims)
}

/// `x · weight + bias`, with `x` rounded to bf16 first when `weight` is stored in bf16.
///
/// # Shapes
/// - `x`: `[rows, d_in]`, `f32`
/// - `weight`: `[d_in, d_out]`, `f32` or bf16
/// - `bias`: `[d_out]`, `f32`
/// - returns `[rows, d_out]`, `f32`
pub fn product<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    let bf16_weight = weight.dtype() == DType::BF16;
    let x = match (route(x), Kernel::detect()) {
        (Route::Flex(x), Some(kernel)) => {
            let bias = bias.unwrap_or_else(|| no_bias(&weight));
            let inputs = [flex(x), flex(recast(weight)), flex(recast(bias))];
            return recast(from_flex(infer(&FusedLinear { kernel }, inputs)));
        }
        (Route::Autodiff(x), Some(kernel)) if !bf16_weight => {
            let bias = bias.unwrap_or_else(|| no_bias(&weight));
            let inputs = [primitive(x), primitive(recast(weight)), primitive(recast(bias))];
            return recast(wrap(record(FusedLinear { kernel }, inputs)));
        }
        (Route::Flex(x), None) => recast(x),
        (Route::Autodiff(x), _) => recast::<FlexAutodiff, B, 2>(x),
        (Route::Composed(x), _) => x,
    };
    composed_product(x, weight, bias)
}

/// Zero starting sums for a layer without a bias: a constant, so no gradient is recorded for it.
fn no_bias<B: Backend>(weight: &Tensor<B, 2>) -> Tensor<B, 1> {
    Tensor::zeros([weight.dims()[1]], &weight.device())
}

/// [`product`] from Burn operations: `x` rounded through bf16 for a bf16 weight, then an `f32`
/// product.
fn composed_product<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 2> {
    let (x, weight) = match weight.dtype() {
        DType::BF16 => (x.cast(DType::BF16).cast(DType::F32), weight.cast(DType::F32)),
        _ => (x, weight),
    };
    let out = x.matmul(weight);
    match bias {
        Some(bias) => out + bias.unsqueeze(),
        None => out,
    }
}

/// `x · weight + bias` on pet-gemm's kernel: inputs `[x, weight, bias]`; the backward keeps `x`
/// and the weight.
#[derive(Debug)]
struct FusedLinear {
    kernel: Kernel,
}

impl FusedOp<3> for FusedLinear {
    type Saved = [FlexTensor; 2];

    fn forward(&self, [x, weight, bias]: [FlexTensor; 3]) -> (FlexTensor, [FlexTensor; 2]) {
        let (rows, d_in, d_out) = sizes(&x, &weight);
        let a = Lhs::Rows(Strided::matrix(values(&x), d_in));
        let (operands, source) = match weight.as_slice::<bf16>() {
            Some(weights) => (Operands::Bf16, Source::Bf16(weights)),
            None => {
                (Operands::F32, Source::Rows(Rows::of(Strided::matrix(values(&weight), d_out))))
            }
        };
        let bias = Some(values(&bias));
        let out = self.kernel.matmul(operands, a, source, bias, rows, d_in, d_out);
        (tensor_of(out, [rows, d_out].into()), [x, weight])
    }

    fn backward(
        &self,
        [x, weight]: [FlexTensor; 2],
        grad: FlexTensor,
        [want_x, want_weight, want_bias]: [bool; 3],
    ) -> [Option<FlexTensor>; 3] {
        let (rows, d_in, d_out) = sizes(&x, &weight);
        let d_out_values = values(&grad);
        let f32s = Operands::F32;
        // dX = dY W^T: `b[p][j] = W[j][p]`, the weight's rows read as columns.
        let dx = want_x.then(|| {
            let d_y = Lhs::Rows(Strided::matrix(d_out_values, d_out));
            let w_t = Source::Columns(Rows::of(Strided::matrix(values(&weight), d_out)));
            let dx = self.kernel.matmul(f32s, d_y, w_t, None, rows, d_out, d_in);
            tensor_of(dx, [rows, d_in].into())
        });
        // dW = X^T dY.
        let dw = want_weight.then(|| {
            let x_t = Lhs::Transposed(Strided::matrix(values(&x), d_in));
            let d_y = Source::Rows(Rows::of(Strided::matrix(d_out_values, d_out)));
            let dw = self.kernel.matmul(f32s, x_t, d_y, None, d_in, rows, d_out);
            tensor_of(dw, [d_in, d_out].into())
        });
        let db = want_bias.then(|| tensor_of(column_sums(d_out_values, d_out), [d_out].into()));
        [dx, dw, db]
    }
}

/// Rows, `d_in` and `d_out` of a product of `x` (`[rows, d_in]`) and `weight` (`[d_in, d_out]`).
fn sizes(x: &FlexTensor, weight: &FlexTensor) -> (usize, usize, usize) {
    let (x, weight) = (x.layout().shape(), weight.layout().shape());
    (x[0], x[1], weight[1])
}

/// Rows of a bias gradient's partial sums per parallel task.
const ROWS_PER_SUM: usize = 256;

/// `sums[j] = sum_r values[r * width + j]`: partial sums over blocks of rows on rayon's threads,
/// then added.
fn column_sums(values: &[f32], width: usize) -> Vec<f32> {
    let add = |mut sums: Vec<f32>, row: &[f32]| {
        sums.iter_mut().zip(row).for_each(|(sum, value)| *sum += value);
        sums
    };
    values
        .par_chunks(ROWS_PER_SUM * width.max(1))
        .map(|block| block.chunks(width.max(1)).fold(vec![0f32; width], add))
        .reduce(|| vec![0f32; width], |sums, partial| add(sums, &partial))
}
