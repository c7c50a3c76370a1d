//! Multi-head scaled dot-product attention from projected rows, as BERT-style encoders compute
//! it: per head, `softmax(q k^T * scale + mask_bias) v`.
//!
//! Burn composes it from a head split (a copy), a batched matmul per head (burn-flex calls a
//! GEMM per `[queries x head_dim] x [head_dim x keys]` matrix: 64-68 GFLOP/s against ~190 for
//! the linears), the score and probability tensors (`[batch, heads, queries, keys]`, written to
//! fresh memory twice), a second batched matmul and a head merge (another copy). For inference
//! on burn-flex with `pet_gemm`'s kernel, [`attention`] instead runs each batch element as one
//! task: per head, the keys and values are packed straight from the `[keys, hidden]` rows, the
//! scores of all queries land in a buffer that stays in cache, the softmax runs on it in place
//! of a tensor, and the context is written into its head's columns of the output rows.
//!
//! Everywhere else (training, other backends, a CPU without the kernel) the composed operations
//! run, with [`crate::attention_probs`] and [`crate::dropout`]. The products round their operands
//! to bf16 when asked (`products`), as a bf16 model's attention does.

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};
use pet_gemm::{Kernel, Operands, Source, Strided};
use rayon::prelude::*;

use crate::attention_probs::softmax_row;
use crate::dispatch::{Route, flex, from_flex, recast, route, tensor_of, values};
use crate::parallel::vectorized;
use crate::{attention_probs, dropout, merge_heads, split_heads};

/// The attention context of `heads` heads, before the output projection.
///
/// `products` is the element type the two products round their operands to: `DType::BF16` for
/// a bf16 model, anything else for `f32`. Dropout on the probabilities (`dropout_prob`) applies
/// under autodiff, as [`crate::dropout`] does.
///
/// # Shapes
/// - `q`: `[batch, queries, hidden]`
/// - `k`, `v`: `[batch, keys, hidden]`
/// - `mask_bias`: `[batch, keys]` (or `[1, keys]`), 0 where attended, very negative elsewhere
/// - output: `[batch, queries, hidden]`
///
/// # Panics
/// When `heads` does not divide `hidden` or the shapes do not fit together as above.
#[allow(clippy::too_many_arguments)]
pub fn attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    mask_bias: Tensor<B, 2>,
    heads: usize,
    scale: f64,
    products: DType,
    dropout_prob: f64,
) -> Tensor<B, 3> {
    let [batch, _, hidden] = q.dims();
    let keys = k.dims()[1];
    assert!(heads > 0 && hidden % heads == 0, "{heads} heads do not divide hidden size {hidden}");
    assert_eq!(k.dims(), [batch, keys, hidden], "keys do not fit queries {:?}", q.dims());
    assert_eq!(v.dims(), [batch, keys, hidden], "values do not fit keys {:?}", k.dims());
    let mask = mask_bias.dims();
    assert!(
        mask[1] == keys && (mask[0] == batch || mask[0] == 1),
        "mask bias of shape {mask:?} for {keys} keys and batch {batch}"
    );
    let operands = if products == DType::BF16 { Operands::Bf16 } else { Operands::F32 };
    let q = match route(q) {
        Route::Flex(q) => match Kernel::detect() {
            Some(kernel) => {
                let (k, v, mask) = (recast(k), recast(v), recast(mask_bias));
                return recast(fused(kernel, q, k, v, mask, heads, scale as f32, operands));
            }
            None => recast(q),
        },
        Route::Autodiff(q) => recast(q),
        Route::Composed(q) => q,
    };
    composed(q, k, v, mask_bias, heads, scale, operands, dropout_prob)
}

/// Burn's operations, head-major.
#[allow(clippy::too_many_arguments)]
fn composed<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    mask_bias: Tensor<B, 2>,
    heads: usize,
    scale: f64,
    operands: Operands,
    dropout_prob: f64,
) -> Tensor<B, 3> {
    let round = |t: Tensor<B, 4>| match operands {
        Operands::F32 => t,
        Operands::Bf16 => t.cast(DType::BF16).cast(DType::F32),
    };
    // [batch, heads, queries | keys, head_dim]
    let (q, k, v) = (split_heads(q, heads), split_heads(k, heads), split_heads(v, heads));
    // [batch, heads, queries, keys]
    let scores = round(q).matmul(round(k).swap_dims(2, 3));
    let probs = dropout(attention_probs(scores, mask_bias, scale), dropout_prob);
    // [batch, queries, hidden]
    merge_heads(round(probs).matmul(round(v)))
}

/// One task per batch element, heads one after the other, on `pet_gemm`'s kernel.
#[allow(clippy::too_many_arguments)]
fn fused(
    kernel: Kernel,
    q: Tensor<Flex, 3>,
    k: Tensor<Flex, 3>,
    v: Tensor<Flex, 3>,
    mask_bias: Tensor<Flex, 2>,
    heads: usize,
    scale: f32,
    operands: Operands,
) -> Tensor<Flex, 3> {
    let [batch, queries, hidden] = q.dims();
    let keys = k.dims()[1];
    let head_dim = hidden / heads;
    let mask_bias =
        if mask_bias.dtype() == DType::F32 { mask_bias } else { mask_bias.cast(DType::F32) };
    let (q, k, v, mask_bias) = (flex(q), flex(k), flex(v), flex(mask_bias));
    let (q, k, v, mask) = (values(&q), values(&k), values(&v), values(&mask_bias));
    let mut out = vec![0f32; batch * queries * hidden];
    if queries > 0 {
        out.par_chunks_mut(queries * hidden).enumerate().for_each(|(b, out)| {
            let q = &q[b * queries * hidden..][..queries * hidden];
            let k = &k[b * keys * hidden..][..keys * hidden];
            let v = &v[b * keys * hidden..][..keys * hidden];
            let bias = if mask.len() == keys { mask } else { &mask[b * keys..][..keys] };
            let mut scores = vec![0f32; queries * keys];
            let mut probs = vec![0f32; queries * keys];
            for head in 0..heads {
                let first = head * head_dim;
                let head = |values| Strided { values, first, stride: hidden };
                // b[p][j] = k[j][first + p]: the head's keys, transposed.
                let key_panels = kernel.pack(operands, head_dim, keys, Source::Columns(head(k)));
                kernel.product(&q[first..], hidden, queries, &key_panels, None, &mut scores, keys);
                vectorized(
                    #[inline(always)]
                    || {
                        let rows = scores.chunks(keys.max(1)).zip(probs.chunks_mut(keys.max(1)));
                        for (scores, probs) in rows {
                            softmax_row(scores, bias, scale, probs);
                        }
                    },
                );
                let value_panels = kernel.pack(operands, keys, head_dim, Source::Rows(head(v)));
                kernel.product(
                    &probs,
                    keys,
                    queries,
                    &value_panels,
                    None,
                    &mut out[first..],
                    hidden,
                );
            }
        });
    }
    from_flex(tensor_of(out, [batch, queries, hidden].into()))
}
