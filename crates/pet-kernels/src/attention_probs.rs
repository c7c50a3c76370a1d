//! The attention probabilities of BERT-style self-attention,
//! `softmax(scores * scale + mask_bias[b, None, None, :], dim 3)`, as one row-wise pass.
//!
//! `mask_bias` is Hugging Face's extended attention mask: 0 where a key is attended, a very
//! negative finite number (such as `f32::MIN`) where it is masked. A masked logit is then
//! `f32::MIN + score * scale`, which is finite, and its distance to the row maximum is either
//! finite and far below `exp`'s range (the key gets a probability that is 0 or at most ~1e-38)
//! or 0 when the whole row is masked: a fully masked row is uniform, as in the composed version.

use burn::backend::Flex;
use burn::tensor::Shape;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_flex::FlexTensor;

use crate::dispatch::{FlexAutodiff, Route, flex_f32, from_flex, recast, route, tensor_of, values};
use crate::fused::{FusedOp, infer, primitive, record, wrap};
use crate::math::exp;
use crate::parallel::{map_rows, zip_map_rows};

/// `softmax(scores * scale + mask_bias[b, None, None, :], 3)` for `scores` of shape
/// `[batch, heads, queries, keys]` and `mask_bias` of shape `[batch, keys]` (or `[1, keys]`,
/// shared by the batch); fused on burn-flex, Burn's composed operations elsewhere.
///
/// Only `scores` is differentiated on the fused path: `mask_bias` is a constant there.
///
/// # Panics
/// When the shapes do not fit together as above.
pub fn attention_probs<B: Backend>(
    scores: Tensor<B, 4>,
    mask_bias: Tensor<B, 2>,
    scale: f64,
) -> Tensor<B, 4> {
    match route(scores) {
        Route::Flex(scores) => {
            // `route` matched `B` as `Flex`, so the mask is a `Flex` tensor too.
            let op = AttentionProbs::new(recast(mask_bias), scale);
            recast(from_flex::<4>(infer(&op, [scores.into_primitive().tensor()])))
        }
        Route::Autodiff(scores) => {
            let mask_bias = recast::<B, FlexAutodiff, 2>(mask_bias).inner();
            let op = AttentionProbs::new(mask_bias, scale);
            recast(wrap::<4>(record(op, [primitive(scores)])))
        }
        Route::Composed(scores) => burn::tensor::activation::softmax(
            scores * scale + mask_bias.unsqueeze_dims::<4>(&[1, 2]),
            3,
        ),
    }
}

/// The kernel pair; the backward keeps the probabilities.
#[derive(Debug)]
struct AttentionProbs {
    /// `[batch or 1, keys]`, contiguous `f32`.
    mask_bias: FlexTensor,
    scale: f32,
}

impl AttentionProbs {
    fn new(mask_bias: Tensor<Flex, 2>, scale: f64) -> Self {
        Self { mask_bias: flex_f32(mask_bias), scale: scale as f32 }
    }

    /// Keys per row, and rows per batch element, of `scores`; checks the mask's shape.
    fn geometry(&self, scores: &Shape) -> (usize, usize) {
        let mask = self.mask_bias.layout().shape();
        assert_eq!(scores.len(), 4, "attention scores are [batch, heads, queries, keys]");
        let (batch, keys) = (scores[0], scores[3]);
        assert!(
            mask.len() == 2 && mask[1] == keys && (mask[0] == batch || mask[0] == 1),
            "mask bias of shape {mask:?} for attention scores of shape {scores:?}",
        );
        (keys, scores[1] * scores[2])
    }
}

impl FusedOp<1> for AttentionProbs {
    type Saved = FlexTensor;

    fn forward(&self, [scores]: [FlexTensor; 1]) -> (FlexTensor, FlexTensor) {
        let shape = scores.layout().shape().clone();
        let (keys, rows_per_batch) = self.geometry(&shape);
        if shape.iter().product::<usize>() == 0 {
            return (scores.clone(), scores);
        }
        let mask = values(&self.mask_bias);
        let shared_mask = mask.len() == keys;
        let scale = self.scale;
        let probs = map_rows(
            values(&scores),
            keys,
            #[inline(always)]
            |row, scores, out| {
                let batch = if shared_mask { 0 } else { row / rows_per_batch };
                softmax_row(scores, &mask[batch * keys..][..keys], scale, out);
            },
        );
        let probs = tensor_of(probs, shape);
        (probs.clone(), probs)
    }

    fn backward(
        &self,
        probs: FlexTensor,
        grad: FlexTensor,
        _: [bool; 1],
    ) -> [Option<FlexTensor>; 1] {
        let shape = probs.layout().shape().clone();
        let keys = shape[3];
        if shape.iter().product::<usize>() == 0 {
            return [Some(grad)];
        }
        let scale = self.scale;
        // d scores = scale * p * (g - sum_row(g * p))
        let dscores = zip_map_rows(
            values(&probs),
            values(&grad),
            keys,
            #[inline(always)]
            |_, p, g, out| {
                let dot = dot(p, g);
                for ((o, &p), &g) in out.iter_mut().zip(p).zip(g) {
                    *o = scale * p * (g - dot);
                }
            },
        );
        [Some(tensor_of(dscores, shape))]
    }
}

/// `out = softmax(scores * scale + bias)` for one row; call inside [`crate::parallel::vectorized`].
#[inline(always)]
pub(crate) fn softmax_row(scores: &[f32], bias: &[f32], scale: f32, out: &mut [f32]) {
    for ((o, &s), &b) in out.iter_mut().zip(scores).zip(bias) {
        *o = s * scale + b;
    }
    let max = max_of(out);
    for o in out.iter_mut() {
        *o = exp(*o - max);
    }
    let inv_sum = 1.0 / sum_of(out);
    for o in out.iter_mut() {
        *o *= inv_sum;
    }
}

/// [`softmax_row`] with an additive score bias and a causal limit: `out[j] = softmax(scores *
/// scale + bias + mask)[j]` over the first `visible` keys, and exactly 0 for the keys after them
/// (those a causal mask hides). Call inside [`crate::parallel::vectorized`].
///
/// `bias` is added before `mask`, as the composed `(scores * scale + bias) + mask` does.
#[inline(always)]
pub(crate) fn shaped_softmax_row(
    scores: &[f32],
    mask: &[f32],
    bias: Option<&[f32]>,
    visible: usize,
    scale: f32,
    out: &mut [f32],
) {
    let (shown, hidden) = out.split_at_mut(visible);
    match bias {
        Some(bias) => {
            for (((o, &s), &b), &m) in shown.iter_mut().zip(scores).zip(bias).zip(mask) {
                *o = s * scale + b + m;
            }
        }
        None => {
            for ((o, &s), &m) in shown.iter_mut().zip(scores).zip(mask) {
                *o = s * scale + m;
            }
        }
    }
    let max = max_of(shown);
    for o in shown.iter_mut() {
        *o = exp(*o - max);
    }
    let inv_sum = 1.0 / sum_of(shown);
    for o in shown.iter_mut() {
        *o *= inv_sum;
    }
    hidden.fill(0.0);
}

/// Independent accumulators in the row reductions, so that they vectorize (`f32` addition is
/// not reassociated by the compiler).
const LANES: usize = 8;

/// The largest element (NaN is skipped; it reaches the output through `exp` anyway).
#[inline(always)]
fn max_of(x: &[f32]) -> f32 {
    let bigger = |a: f32, b: f32| if b > a { b } else { a };
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = bigger(*a, v);
        }
    }
    chunks.remainder().iter().chain(&acc).fold(f32::NEG_INFINITY, |a, &v| bigger(a, v))
}

/// The sum of the elements.
#[inline(always)]
fn sum_of(x: &[f32]) -> f32 {
    let mut acc = [0.0; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    chunks.remainder().iter().chain(&acc).sum()
}

/// `sum_i a[i] * b[i]`.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0; LANES];
    let mut a_chunks = a.chunks_exact(LANES);
    let mut b_chunks = b.chunks_exact(LANES);
    for (a, b) in (&mut a_chunks).zip(&mut b_chunks) {
        for ((acc, &a), &b) in acc.iter_mut().zip(a).zip(b) {
            *acc += a * b;
        }
    }
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(a, b)| a * b).sum();
    tail + acc.iter().sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::{shaped_softmax_row, softmax_row};

    #[test]
    fn shaped_row_adds_the_bias_and_zeroes_keys_past_the_visible_ones() {
        // Keys 0 and 1 are visible; a bias of ln 3 on key 0 makes its weight 3 : 1, and key 3's
        // large score does not count.
        let scores = [2.0, 2.0, 0.0, 50.0];
        let mask = [0.0, 0.0, 0.0, 0.0];
        let bias = [3f32.ln(), 0.0, 7.0, 7.0];
        let mut out = [9.0; 4];
        shaped_softmax_row(&scores, &mask, Some(&bias), 2, 0.5, &mut out);
        assert!((out[0] - 0.75).abs() < 1e-6 && (out[1] - 0.25).abs() < 1e-6, "{out:?}");
        assert_eq!(&out[2..], &[0.0, 0.0]);
    }

    #[test]
    fn shaped_row_with_no_bias_and_every_key_visible_is_the_plain_row() {
        let scores = [0.3, -1.2, 4.0, 0.0, 2.5];
        let mask = [0.0, f32::MIN, 0.0, 0.0, f32::MIN];
        let (mut plain, mut shaped) = ([0.0; 5], [0.0; 5]);
        softmax_row(&scores, &mask, 0.125, &mut plain);
        shaped_softmax_row(&scores, &mask, None, 5, 0.125, &mut shaped);
        assert_eq!(plain, shaped);
    }
}
