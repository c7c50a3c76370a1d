//! Layer normalization over the last dimension, `(x - mean) / sqrt(var + eps) * gamma + beta`
//! with the biased (population) variance, as `burn::nn::LayerNorm` and PyTorch compute it.

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_flex::FlexTensor;

use crate::dispatch::{FlexAutodiff, Route, from_flex, recast, route, tensor_of, values};
use crate::fused::{FusedOp, infer, primitive, record, wrap};
use crate::parallel::{fold_rows, map_rows_with, zip_map_rows};

/// Layer norm of `x` over its last dimension, scaled by `gamma` and shifted by `beta` (both of
/// that dimension's length); fused on burn-flex, `B::layer_norm` (what `burn::nn::LayerNorm`
/// runs) elsewhere.
///
/// # Panics
/// When `x` has no dimension, or `gamma` or `beta` is not of `x`'s last dimension's length.
pub fn layer_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Tensor<B, D> {
    let d_model = *x.dims().last().expect("layer_norm needs an input with a dimension");
    assert_eq!(gamma.dims(), [d_model], "layer_norm: gamma must match the last dimension");
    assert_eq!(beta.dims(), [d_model], "layer_norm: beta must match the last dimension");
    // The fused kernels read `f32` parameters and at least one element per row.
    let fusable = gamma.dtype() == DType::F32 && beta.dtype() == DType::F32 && d_model > 0;
    let routed = if fusable { route(x) } else { Route::Composed(x) };
    let op = LayerNorm { epsilon: epsilon as f32 };
    match routed {
        Route::Flex(x) => {
            let [gamma, beta] =
                [gamma, beta].map(|p| recast::<B, Flex, 1>(p).into_primitive().tensor());
            recast(from_flex::<D>(infer(&op, [x.into_primitive().tensor(), gamma, beta])))
        }
        Route::Autodiff(x) => {
            let [gamma, beta] = [gamma, beta].map(|p| primitive(recast::<B, FlexAutodiff, 1>(p)));
            recast(wrap::<D>(record(op, [primitive(x), gamma, beta])))
        }
        Route::Composed(x) => Tensor::from_primitive(TensorPrimitive::Float(B::layer_norm(
            x.into_primitive().tensor(),
            gamma.into_primitive().tensor(),
            Some(beta.into_primitive().tensor()),
            epsilon,
        ))),
    }
}

/// The layer norm kernel pair over inputs `[x, gamma, beta]`.
#[derive(Debug)]
struct LayerNorm {
    epsilon: f32,
}

/// What the backward keeps: the input, the scale, and each row's [`RowStats`] (the normalized
/// input is recomputed from them, two subtractions and a multiply, rather than stored as a second
/// copy of `x`).
#[derive(Clone, Debug)]
struct Saved {
    x: FlexTensor,
    gamma: FlexTensor,
    stats: Vec<RowStats>,
}

/// A row's `[shift, correction, rstd]`: its mean is `shift + correction`, kept as the two parts so
/// that `x - mean` is `(x - shift) - correction`, where the first subtraction is exact for `x`
/// near `shift`. A mean rounded to one `f32` would be off by up to half an ulp of its magnitude
/// (4e-6 around 100), an error every normalized value of the row would share.
type RowStats = [f32; 3];

/// `(x - mean) / sqrt(var + epsilon)` of one element of a row.
#[inline(always)]
fn normalized(x: f32, [shift, correction, rstd]: RowStats) -> f32 {
    ((x - shift) - correction) * rstd
}

impl FusedOp<3> for LayerNorm {
    type Saved = Saved;

    fn forward(&self, [x, gamma, beta]: [FlexTensor; 3]) -> (FlexTensor, Saved) {
        let (scale, shift) = (values(&gamma), values(&beta));
        let epsilon = self.epsilon;
        let (out, stats) = map_rows_with(
            values(&x),
            scale.len(),
            #[inline(always)]
            |_, x, out| {
                let stats = row_stats(x, epsilon);
                for ((o, &x), (&g, &b)) in out.iter_mut().zip(x).zip(scale.iter().zip(shift)) {
                    *o = normalized(x, stats) * g + b;
                }
                stats
            },
        );
        (tensor_of(out, x.layout().shape().clone()), Saved { x, gamma, stats })
    }

    fn backward(
        &self,
        Saved { x, gamma, stats }: Saved,
        grad: FlexTensor,
        [want_x, want_gamma, want_beta]: [bool; 3],
    ) -> [Option<FlexTensor>; 3] {
        let (g, xs, scale) = (values(&grad), values(&x), values(&gamma));
        let d = scale.len();
        let n = d as f32;
        let stats = stats.as_slice();

        // dx = rstd (g gamma - mean(g gamma) - x_hat mean(g gamma x_hat)), per row.
        let dx = want_x.then(|| {
            let dx = zip_map_rows(
                g,
                xs,
                d,
                #[inline(always)]
                |row, g, x, dx| {
                    let stats = stats[row];
                    for ((o, &g), &w) in dx.iter_mut().zip(g).zip(scale) {
                        *o = g * w;
                    }
                    let sum_gg = lane_sum(dx, |gg| gg);
                    let sum_gg_xhat = lane_sum_zip(dx, x, |gg, x| gg * normalized(x, stats));
                    let (mean_gg, mean_gg_xhat) = (sum_gg / n, sum_gg_xhat / n);
                    let rstd = stats[2];
                    for (o, &x) in dx.iter_mut().zip(x) {
                        *o = rstd * (*o - mean_gg - normalized(x, stats) * mean_gg_xhat);
                    }
                },
            );
            tensor_of(dx, x.layout().shape().clone())
        });

        // dgamma = sum over rows of g x_hat, dbeta = sum over rows of g: column sums per task,
        // then added, skipped for frozen parameters.
        let (dgamma, dbeta) = if want_gamma || want_beta {
            let sums = fold_rows(
                g,
                xs,
                d,
                2 * d,
                #[inline(always)]
                |row, g, x, acc| {
                    let stats = stats[row];
                    let (dgamma, dbeta) = acc.split_at_mut(d);
                    if want_gamma {
                        for ((a, &g), &x) in dgamma.iter_mut().zip(g).zip(x) {
                            *a += g * normalized(x, stats);
                        }
                    }
                    if want_beta {
                        for (a, &g) in dbeta.iter_mut().zip(g) {
                            *a += g;
                        }
                    }
                },
            );
            let (dgamma, dbeta) = sums.split_at(d);
            let column = |sums: &[f32]| tensor_of(sums.to_vec(), gamma.layout().shape().clone());
            (want_gamma.then(|| column(dgamma)), want_beta.then(|| column(dbeta)))
        } else {
            (None, None)
        };
        [dx, dgamma, dbeta]
    }
}

/// Independent accumulators per sum: two AVX registers, enough to keep both FMA ports busy.
const LANES: usize = 16;

/// A row's [`RowStats`] with `rstd = 1 / sqrt(var + epsilon)`, by the corrected two-pass
/// algorithm: a first mean (the shift), then the sums of deviations from it and of their squares,
/// which give the shift's correction and the variance without the cancellation of
/// `E[x^2] - E[x]^2` (rows far from zero).
#[inline(always)]
fn row_stats(x: &[f32], epsilon: f32) -> RowStats {
    let n = x.len() as f32;
    let shift = lane_sum(x, |x| x) / n;
    let dev = lane_sum(x, |x| x - shift);
    let dev2 = lane_sum(x, |x| (x - shift) * (x - shift));
    let var = ((dev2 - dev * dev / n) / n).max(0.0);
    [shift, dev / n, 1.0 / (var + epsilon).sqrt()]
}

/// The sum over `a` of `f(a[i])`, accumulated in [`LANES`] interleaved partial sums so the loop
/// vectorizes (a single running `f32` sum does not: it fixes the order of additions). One sum per
/// call: with several, LLVM left the loop scalar.
#[inline(always)]
fn lane_sum(a: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = a.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (acc, &a) in acc.iter_mut().zip(chunk) {
            *acc += f(a);
        }
    }
    acc.iter().sum::<f32>() + tail.iter().map(|&a| f(a)).sum::<f32>()
}

/// Like [`lane_sum`] of `f(a[i], b[i])` over two slices of the same length.
#[inline(always)]
fn lane_sum_zip(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (tail_a, tail_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (chunk_a, chunk_b) in chunks_a.zip(chunks_b) {
        for (acc, (&a, &b)) in acc.iter_mut().zip(chunk_a.iter().zip(chunk_b)) {
            *acc += f(a, b);
        }
    }
    acc.iter().sum::<f32>() + tail_a.iter().zip(tail_b).map(|(&a, &b)| f(a, b)).sum::<f32>()
}
