//! Multi-head scaled dot-product attention from projected rows, as BERT-style encoders compute
//! it: per head, `softmax(q k^T * scale + mask_bias) v`; [`attention_with`] also adds a per-head
//! score bias (T5's relative position bias) and applies a causal mask (decoders), on every path.
//!
//! Burn composes it from a head split (a copy), a batched matmul per head (burn-flex calls a
//! GEMM per `[queries x head_dim] x [head_dim x keys]` matrix: 64-68 GFLOP/s against ~190 for
//! the linears), the score and probability tensors (`[batch, heads, queries, keys]`, written to
//! fresh memory twice), a second batched matmul and a head merge (another copy); its backward
//! has four more per-head products and the copies again. On burn-flex with `pet_gemm`'s kernel,
//! [`attention`] instead runs each batch element as one task: per head, the keys and values
//! are packed straight from the `[keys, hidden]` rows, the scores of all queries land in a
//! buffer that stays in cache, the softmax (and dropout, whose mask is the one
//! [`crate::dropout()`] draws for the composed probabilities) runs on it, and the context is
//! written into its head's columns of the output rows. Under autodiff it is one operation that
//! keeps the probabilities and runs the four backward products the same way.
//!
//! A score bias (`[batch or 1, heads, queries, keys]`) is added to the scaled scores of each row
//! before the softmax, and is a fourth input of the autodiff operation: its gradient is the
//! softmax's input gradient, summed over the batch when the bias has one row. A causal mask
//! stops each query's softmax at its last visible key and writes exact zeros after it (the
//! backward needs nothing more: a zero probability passes no gradient). Without either, the
//! row loops are the ones they were before these options existed.
//!
//! Everywhere else (other backends, a CPU without the kernel, bf16 under autodiff) the composed
//! operations run, with [`crate::attention_probs()`] and [`crate::dropout()`]. The products round
//! their operands to bf16 when asked (`products`), as a bf16 model's attention does.

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, DType, Shape, Tensor};
use burn_flex::FlexTensor;
use pet_gemm::{Kernel, Lhs, Operands, Rows, Source, Strided};
use rayon::prelude::*;

use crate::attention_probs::{dot, shaped_softmax_row, softmax_row};
use crate::dispatch::{
    FlexAutodiff, Route, flex, flex_f32, from_flex, recast, route, tensor_of, values,
};
use crate::dropout::{Dropout, draw_seed};
use crate::fused::{FusedOp, infer, primitive, record, wrap};
use crate::parallel::vectorized;
use crate::{attention_probs, dropout, merge_heads, split_heads};

/// The attention context of `heads` heads, before the output projection: [`attention_with`]
/// with no score bias and no causal mask.
///
/// `products` is the element type the two products round their operands to: `DType::BF16` for
/// a bf16 model, anything else for `f32`. Dropout on the probabilities (`dropout_prob`) applies
/// under autodiff, as [`crate::dropout()`] does.
///
/// `prefix` holds keys and values that come before `k` and `v` (an attention prefix, as
/// P-Tuning v2 has): the fused inference path packs them straight from their own rows, the
/// others join them first.
///
/// # Shapes
/// - `q`: `[batch, queries, hidden]`
/// - `k`, `v`: `[batch, seq_keys, hidden]`
/// - `prefix`: keys and values `[batch or 1, n_prefix, hidden]`
/// - `mask_bias`: `[batch, keys]` (or `[1, keys]`), `keys = n_prefix + seq_keys`, 0 where
///   attended, very negative elsewhere
/// - output: `[batch, queries, hidden]`
///
/// # Panics
/// When `heads` does not divide `hidden` or the shapes do not fit together as above.
#[allow(clippy::too_many_arguments)]
pub fn attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    prefix: Option<(Tensor<B, 3>, Tensor<B, 3>)>,
    mask_bias: Tensor<B, 2>,
    heads: usize,
    scale: f64,
    products: DType,
    dropout_prob: f64,
) -> Tensor<B, 3> {
    let options =
        AttentionOptions::new(heads, scale).with_products(products).with_dropout(dropout_prob);
    attention_with(q, k, v, prefix, mask_bias, options)
}

/// How [`attention_with`] computes: the heads, the scale, the products' precision, dropout, and
/// the terms that shape the scores beyond `q k^T * scale + mask_bias`.
#[derive(Clone, Debug)]
pub struct AttentionOptions<B: Backend> {
    /// Number of heads; divides the hidden size.
    pub heads: usize,
    /// Factor of the raw scores `q k^T`: `1 / sqrt(head_dim)` in BERT, 1 in T5 (which folds it
    /// into its query weights).
    pub scale: f64,
    /// The element type the two products round their operands to: `DType::BF16` for a bf16
    /// model, anything else for `f32`.
    pub products: DType,
    /// Dropout probability on the attention probabilities (under autodiff, as
    /// [`crate::dropout()`]).
    pub dropout_prob: f64,
    /// An additive score bias per head, `[batch or 1, heads, queries, keys]` (`keys` counts the
    /// prefix keys), added to the scaled scores before the mask and the softmax: T5's relative
    /// position bias. It gets a gradient under autodiff when it requires one.
    pub bias: Option<Tensor<B, 4>>,
    /// Whether query `i` sees only keys `j <= i + keys - queries`: the usual lower triangle when
    /// `keys == queries`; prefix keys and a decoder's cached past keys (which come first) stay
    /// visible.
    pub causal: bool,
}

impl<B: Backend> AttentionOptions<B> {
    /// `heads` heads, scores scaled by `scale`, `f32` products, no dropout, no score bias, not
    /// causal: what [`attention`] computes.
    pub fn new(heads: usize, scale: f64) -> Self {
        Self { heads, scale, products: DType::F32, dropout_prob: 0.0, bias: None, causal: false }
    }

    /// With the products rounding their operands to `products` (`DType::BF16`) or not.
    pub fn with_products(self, products: DType) -> Self {
        Self { products, ..self }
    }

    /// With dropout of probability `dropout_prob` on the attention probabilities.
    pub fn with_dropout(self, dropout_prob: f64) -> Self {
        Self { dropout_prob, ..self }
    }

    /// With `bias` (`[batch or 1, heads, queries, keys]`) added to the scaled scores.
    pub fn with_bias(self, bias: Tensor<B, 4>) -> Self {
        Self { bias: Some(bias), ..self }
    }

    /// With a causal mask (`causal == true`) or without.
    pub fn with_causal(self, causal: bool) -> Self {
        Self { causal, ..self }
    }
}

/// Multi-head attention as [`attention`] computes it, with a score bias and a causal mask as
/// `options` asks: per head, `softmax(q k^T * scale + bias + mask_bias, hiding later keys) v`.
///
/// On burn-flex with `pet_gemm`'s kernel the fused inference and training paths take both
/// (see the module docs); elsewhere the composed operations do, the causal mask as `-inf`.
///
/// # Shapes
/// As [`attention`], and `options.bias`: `[batch or 1, heads, queries, keys]`.
///
/// # Panics
/// When `heads` does not divide `hidden`, the shapes do not fit together, or the mask is causal
/// with fewer keys than queries (a query would see no key).
pub fn attention_with<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    prefix: Option<(Tensor<B, 3>, Tensor<B, 3>)>,
    mask_bias: Tensor<B, 2>,
    options: AttentionOptions<B>,
) -> Tensor<B, 3> {
    let AttentionOptions { heads, scale, products, dropout_prob, bias, causal } = options;
    let [batch, queries, hidden] = q.dims();
    let seq_keys = k.dims()[1];
    assert!(heads > 0 && hidden % heads == 0, "{heads} heads do not divide hidden size {hidden}");
    assert_eq!(k.dims(), [batch, seq_keys, hidden], "keys do not fit queries {:?}", q.dims());
    assert_eq!(v.dims(), [batch, seq_keys, hidden], "values do not fit keys {:?}", k.dims());
    let n_prefix = prefix.as_ref().map_or(0, |(pk, pv)| {
        let [rows, n, width] = pk.dims();
        assert!(rows == 1 || rows == batch, "prefix keys {:?} for batch {batch}", pk.dims());
        assert_eq!(width, hidden, "prefix keys {:?} for hidden size {hidden}", pk.dims());
        assert_eq!(pv.dims(), pk.dims(), "prefix values do not fit prefix keys");
        n
    });
    let keys = n_prefix + seq_keys;
    let mask = mask_bias.dims();
    assert!(
        mask[1] == keys && (mask[0] == batch || mask[0] == 1),
        "mask bias of shape {mask:?} for {keys} keys and batch {batch}"
    );
    if let Some(bias) = &bias {
        let [rows, bias_heads, bias_queries, bias_keys] = bias.dims();
        assert!(
            (rows == 1 || rows == batch)
                && [bias_heads, bias_queries, bias_keys] == [heads, queries, keys],
            "score bias of shape {:?} for batch {batch}, {heads} heads, {queries} queries and \
             {keys} keys",
            bias.dims()
        );
    }
    assert!(!causal || keys >= queries, "causal attention of {queries} queries over {keys} keys");
    assert!((0.0..=1.0).contains(&dropout_prob), "dropout probability {dropout_prob}");
    let operands = if products == DType::BF16 { Operands::Bf16 } else { Operands::F32 };
    let kernel = Kernel::detect();
    let q = match (route(q), kernel) {
        (Route::Flex(q), Some(kernel)) => {
            let mask_bias = recast(mask_bias);
            let mut op =
                FusedAttention::new(kernel, mask_bias, heads, scale, operands, None, false);
            op.prefix = prefix.map(|(pk, pv)| [pk, pv].map(|t| flex(recast(t))));
            op.causal = causal;
            let [q, k, v] = [q, recast(k), recast(v)].map(|t| t.into_primitive().tensor());
            let out = match bias {
                None => infer(&op, [q, k, v]),
                Some(bias) => infer(&op, [q, k, v, flex_f32(recast(bias))]),
            };
            return recast(from_flex::<3>(out));
        }
        (Route::Autodiff(q), Some(kernel)) if operands == Operands::F32 => {
            let (k, v) = joined(prefix, k, v);
            let mask_bias = recast::<B, FlexAutodiff, 2>(mask_bias).inner();
            let dropout = (dropout_prob > 0.0).then(|| Dropout::new(dropout_prob, draw_seed()));
            let mut op =
                FusedAttention::new(kernel, mask_bias, heads, scale, operands, dropout, true);
            op.causal = causal;
            let [q, k, v] = [q, recast(k), recast(v)].map(primitive);
            let out = match bias {
                None => record(op, [q, k, v]),
                Some(bias) => {
                    let bias = recast::<B, FlexAutodiff, 4>(bias);
                    let bias =
                        if bias.dtype() == DType::F32 { bias } else { bias.cast(DType::F32) };
                    record(op, [q, k, v, primitive(bias)])
                }
            };
            return recast(wrap::<3>(out));
        }
        (Route::Flex(q), _) => recast(q),
        (Route::Autodiff(q), _) => recast(q),
        (Route::Composed(q), _) => q,
    };
    let (k, v) = joined(prefix, k, v);
    let shaping = Shaping { bias, causal };
    composed(q, k, v, mask_bias, shaping, heads, scale, operands, dropout_prob)
}

/// Keys and values with the prefix's in front (`[prefix rows; rows]` along the sequence, the
/// prefix broadcast over the batch).
fn joined<B: Backend>(
    prefix: Option<(Tensor<B, 3>, Tensor<B, 3>)>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let Some((prefix_k, prefix_v)) = prefix else { return (k, v) };
    let join = |prefix: Tensor<B, 3>, rows: Tensor<B, 3>| {
        let [batch, _, hidden] = rows.dims();
        let n_prefix = prefix.dims()[1];
        Tensor::cat(vec![prefix.expand([batch, n_prefix, hidden]), rows], 1)
    };
    (join(prefix_k, k), join(prefix_v, v))
}

/// What the composed path adds to the scaled scores: [`AttentionOptions::bias`] and
/// [`AttentionOptions::causal`].
struct Shaping<B: Backend> {
    bias: Option<Tensor<B, 4>>,
    causal: bool,
}

/// Burn's operations, head-major.
#[allow(clippy::too_many_arguments)]
fn composed<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    mask_bias: Tensor<B, 2>,
    shaping: Shaping<B>,
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
    let probs = match shaping {
        Shaping { bias: None, causal: false } => attention_probs(scores, mask_bias, scale),
        Shaping { bias, causal } => {
            let dims = scores.dims();
            let mut logits = scores * scale;
            if let Some(bias) = bias {
                logits = logits + bias;
            }
            if causal {
                let [_, _, queries, keys] = dims;
                // True where key j comes after query i's last visible key, i + keys - queries.
                let offset = (keys - queries) as i64;
                let hidden =
                    Tensor::<B, 2, Bool>::tril_mask([queries, keys], offset, &logits.device());
                logits = logits.mask_fill(hidden.unsqueeze::<4>().expand(dims), f32::NEG_INFINITY);
            }
            attention_probs(logits, mask_bias, 1.0)
        }
    };
    let probs = dropout(probs, dropout_prob);
    // [batch, queries, hidden]
    merge_heads(round(probs).matmul(round(v)))
}

/// The fused kernel pair, one task per batch element, heads one after the other. Its inputs are
/// `q`, `k`, `v` (`FusedOp<3>`), and the score bias after them when there is one (`FusedOp<4>`).
#[derive(Debug)]
struct FusedAttention {
    kernel: Kernel,
    /// `[batch or 1, keys]`, contiguous `f32`.
    mask_bias: FlexTensor,
    heads: usize,
    scale: f32,
    operands: Operands,
    /// Dropout on the probabilities (under autodiff, with a non-zero probability).
    dropout: Option<Dropout>,
    /// Whether the forward keeps what the backward needs (under autodiff).
    training: bool,
    /// Keys and values before `k` and `v` (`[batch or 1, n_prefix, hidden]`, contiguous), read
    /// where they are at inference (packed from their own rows); training joins them beforehand.
    prefix: Option<[FlexTensor; 2]>,
    /// Whether query `i` sees only keys `j <= i + keys - queries`.
    causal: bool,
}

/// What the backward needs: the inputs and the probabilities, `[batch, heads, queries, keys]`.
#[derive(Clone, Debug)]
struct Saved {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    probs: FlexTensor,
    /// The probabilities after dropout, where there was dropout.
    kept: Option<FlexTensor>,
    /// The score bias's shape (`[batch or 1, heads, queries, keys]`), where there was one.
    bias_shape: Option<Shape>,
}

/// Sizes of one call.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    queries: usize,
    keys: usize,
    hidden: usize,
    head_dim: usize,
}

impl Geometry {
    /// The batch size and the geometry of `q` and `k` after `n_prefix` prefix keys.
    fn of(q: &FlexTensor, k: &FlexTensor, heads: usize, n_prefix: usize) -> (usize, Self) {
        let (q, k) = (q.layout().shape(), k.layout().shape());
        let geometry =
            Self { queries: q[1], keys: n_prefix + k[1], hidden: q[2], head_dim: q[2] / heads };
        (q[0], geometry)
    }

    /// Head `head`'s columns of a batch element's rows (`[rows, hidden]`).
    fn head_strided<'a>(&self, rows: &'a [f32], head: usize) -> Strided<'a> {
        Strided { values: rows, first: head * self.head_dim, stride: self.hidden }
    }

    /// [`Geometry::head_strided`] as the rows of a right-hand operand.
    fn head<'a>(&self, rows: &'a [f32], head: usize) -> Rows<'a> {
        Rows::of(self.head_strided(rows, head))
    }

    /// A head's scores or probabilities, `[queries, keys]`.
    fn scores<'a>(&self, values: &'a [f32]) -> Strided<'a> {
        Strided::matrix(values, self.keys)
    }

    /// How many keys query `query` sees: all, or (`causal`) those up to `query + keys -
    /// queries`.
    #[inline(always)]
    fn visible(&self, query: usize, causal: bool) -> usize {
        if causal { query + 1 + self.keys - self.queries } else { self.keys }
    }

    /// Head `head`'s columns of a batch element's keys or values, after its prefix rows.
    fn head_after<'a>(
        &self,
        rows: &'a [f32],
        prefix: Option<(&'a [f32], usize)>,
        head: usize,
    ) -> Rows<'a> {
        let rows = self.head(rows, head);
        match prefix {
            Some((prefix, n)) => rows.below(self.head_strided(prefix, head), n),
            None => rows,
        }
    }
}

impl FusedAttention {
    fn new(
        kernel: Kernel,
        mask_bias: Tensor<Flex, 2>,
        heads: usize,
        scale: f64,
        operands: Operands,
        dropout: Option<Dropout>,
        training: bool,
    ) -> Self {
        Self {
            kernel,
            mask_bias: flex_f32(mask_bias),
            heads,
            scale: scale as f32,
            operands,
            dropout,
            training,
            prefix: None,
            causal: false,
        }
    }

    /// Prefix rows (keys and values: none, or `[batch or 1, n_prefix, hidden]`) for element `b`.
    fn prefix_of(&self, b: usize) -> Option<([&[f32]; 2], usize)> {
        let [keys, vals] = self.prefix.as_ref()?;
        let shape = keys.layout().shape();
        let (rows, n, hidden) = (shape[0], shape[1], shape[2]);
        let at = if rows == 1 { 0 } else { b * n * hidden };
        Some(([&values(keys)[at..][..n * hidden], &values(vals)[at..][..n * hidden]], n))
    }

    /// The mask bias row of batch element `b`.
    fn mask_of(&self, b: usize, keys: usize) -> &[f32] {
        let mask = values(&self.mask_bias);
        if mask.len() == keys { mask } else { &mask[b * keys..][..keys] }
    }

    /// Batch element `b`: `out` (`[queries, hidden]`) from its rows of `q`, `k`, `v` and its
    /// score bias (`[heads, queries, keys]`, if any). `probs` and `kept` (the probabilities after
    /// dropout) receive each head's values (`[heads, queries, keys]`) or, with room for one head
    /// only, are scratch.
    #[allow(clippy::too_many_arguments)]
    fn element(
        &self,
        g: Geometry,
        b: usize,
        [q, k, v]: [&[f32]; 3],
        bias: Option<&[f32]>,
        out: &mut [f32],
        probs: &mut [f32],
        kept: &mut [f32],
    ) {
        let (kernel, operands) = (self.kernel, self.operands);
        let per_head = g.queries * g.keys;
        // A head's part of a saved buffer, or all of a scratch one.
        let of_head = |len: usize, head: usize| {
            if len > per_head { head * per_head..(head + 1) * per_head } else { 0..len }
        };
        let mask = self.mask_of(b, g.keys);
        let prefix = self.prefix_of(b);
        let (prefix_keys, prefix_values) = match prefix {
            Some(([keys, values], n)) => (Some((keys, n)), Some((values, n))),
            None => (None, None),
        };
        let mut scores = vec![0f32; per_head];
        for head in 0..self.heads {
            let first = head * g.head_dim;
            let range = of_head(probs.len(), head);
            let probs = &mut probs[range];
            // b[p][j] = k[j][first + p]: the head's keys, transposed.
            let keys = Source::Columns(g.head_after(k, prefix_keys, head));
            let keys = kernel.pack(operands, g.head_dim, g.keys, keys);
            let q_rows = Lhs::Rows(g.head_strided(q, head));
            kernel.product(q_rows, g.queries, &keys, None, &mut scores, g.keys);
            let origin = (b * self.heads + head) * per_head;
            let range = of_head(kept.len(), head);
            let kept = &mut kept[range];
            // [queries, keys]
            let head_bias = bias.map(|bias| &bias[head * per_head..][..per_head]);
            vectorized(
                #[inline(always)]
                || {
                    let row = g.keys.max(1);
                    let rows = scores.chunks(row).zip(probs.chunks_mut(row));
                    if head_bias.is_none() && !self.causal {
                        for (scores, probs) in rows {
                            softmax_row(scores, mask, self.scale, probs);
                        }
                    } else {
                        for (i, (scores, probs)) in rows.enumerate() {
                            let bias = head_bias.map(|bias| &bias[i * row..][..row]);
                            let visible = g.visible(i, self.causal);
                            shaped_softmax_row(scores, mask, bias, visible, self.scale, probs);
                        }
                    }
                    if let Some(dropout) = self.dropout {
                        for (i, (kept, &p)) in kept.iter_mut().zip(probs.iter()).enumerate() {
                            *kept = dropout.element(origin + i, p);
                        }
                    }
                },
            );
            let weights = if self.dropout.is_some() { &*kept } else { &*probs };
            let values = Source::Rows(g.head_after(v, prefix_values, head));
            let values = kernel.pack(operands, g.keys, g.head_dim, values);
            let weights = Lhs::Rows(g.scores(weights));
            kernel.product(weights, g.queries, &values, None, &mut out[first..], g.hidden);
        }
    }

    /// The forward of both arities: the output, and what the backward needs under autodiff.
    fn run(
        &self,
        [q, k, v]: [FlexTensor; 3],
        bias: Option<&FlexTensor>,
    ) -> (FlexTensor, Option<Saved>) {
        let n_prefix = self.prefix.as_ref().map_or(0, |[keys, _]| keys.layout().shape()[1]);
        let (batch, g) = Geometry::of(&q, &k, self.heads, n_prefix);
        let shape = q.layout().shape().clone();
        let inputs = [values(&q), values(&k), values(&v)];
        let (q_rows, kv_rows) = (g.queries * g.hidden, (g.keys - n_prefix) * g.hidden);
        let per_head = g.queries * g.keys;
        let per_element = self.heads * per_head;
        // The score bias of element `b`: `[heads, queries, keys]`, shared or its own.
        let bias_values = bias.map(values);
        let bias_of = |b: usize| {
            bias_values.map(|all| {
                if all.len() == per_element { all } else { &all[b * per_element..][..per_element] }
            })
        };
        let keep_kept = self.training && self.dropout.is_some();
        let mut out = vec![0f32; batch * q_rows];
        let mut probs = vec![0f32; if self.training { batch * per_element } else { 0 }];
        let mut kept = vec![0f32; if keep_kept { batch * per_element } else { 0 }];
        if q_rows > 0 {
            // One task per batch element, with its slices of the saved buffers (if kept).
            let mut tasks: Vec<_> = out.chunks_mut(q_rows).map(|out| (out, None, None)).collect();
            for (task, probs) in tasks.iter_mut().zip(probs.chunks_mut(per_element.max(1))) {
                task.1 = Some(probs);
            }
            for (task, kept) in tasks.iter_mut().zip(kept.chunks_mut(per_element.max(1))) {
                task.2 = Some(kept);
            }
            tasks.into_par_iter().enumerate().for_each(|(b, (out, probs, kept))| {
                let (mut probs_scratch, mut kept_scratch) = (Vec::new(), Vec::new());
                let probs = saved_or(probs, &mut probs_scratch, per_head);
                let kept_len = if self.dropout.is_some() { per_head } else { 0 };
                let kept = saved_or(kept, &mut kept_scratch, kept_len);
                let rows = rows_of(b, inputs, q_rows, kv_rows);
                self.element(g, b, rows, bias_of(b), out, probs, kept);
            });
        }
        let out = tensor_of(out, shape);
        let shape = [batch, self.heads, g.queries, g.keys];
        let saved = self.training.then(|| Saved {
            probs: tensor_of(probs, shape.into()),
            kept: keep_kept.then(|| tensor_of(kept, shape.into())),
            bias_shape: bias.map(|bias| bias.layout().shape().clone()),
            q,
            k,
            v,
        });
        (out, saved)
    }

    /// The backward of both arities: the gradients of `q`, `k`, `v`, and of the score bias when
    /// `want_bias` (the softmax's input gradient, summed over the batch for a shared bias).
    fn gradients(
        &self,
        saved: Option<Saved>,
        grad: FlexTensor,
        want_bias: bool,
    ) -> ([FlexTensor; 3], Option<FlexTensor>) {
        let Some(Saved { q, k, v, probs, kept, bias_shape }) = saved else {
            unreachable!("a recorded attention keeps its inputs and probabilities");
        };
        // Training joins any prefix before this operation.
        let (batch, g) = Geometry::of(&q, &k, self.heads, 0);
        let inputs = [values(&q), values(&k), values(&v)];
        let (probs, d_out) = (values(&probs), values(&grad));
        // The probabilities the context was made of: after dropout where there was one.
        let weights = kept.as_ref().map_or(probs, values);
        let (q_rows, kv_rows) = (g.queries * g.hidden, g.keys * g.hidden);
        let per_head = g.queries * g.keys;
        let per_element = self.heads * per_head;
        let bias_shape = bias_shape.filter(|_| want_bias);
        let kernel = self.kernel;
        let f32s = Operands::F32;
        let mut dq = vec![0f32; batch * q_rows];
        let mut dk = vec![0f32; batch * kv_rows];
        let mut dv = vec![0f32; batch * kv_rows];
        // Each element's score gradient, `[batch, heads, queries, keys]`, where the bias wants it.
        let mut d_logits = vec![0f32; if bias_shape.is_some() { batch * per_element } else { 0 }];
        if q_rows > 0 && kv_rows > 0 {
            let mut d_logits_of: Vec<Option<&mut [f32]>> = (0..batch).map(|_| None).collect();
            for (slot, d_logits) in d_logits_of.iter_mut().zip(d_logits.chunks_mut(per_element)) {
                *slot = Some(d_logits);
            }
            dq.par_chunks_mut(q_rows)
                .zip(dk.par_chunks_mut(kv_rows))
                .zip(dv.par_chunks_mut(kv_rows))
                .zip(d_logits_of)
                .enumerate()
                .for_each(|(b, (((dq, dk), dv), mut d_logits))| {
                    let [q, k, v] = rows_of(b, inputs, q_rows, kv_rows);
                    let d_out = &d_out[b * q_rows..][..q_rows];
                    let mut d_scores = vec![0f32; per_head];
                    for head in 0..self.heads {
                        let first = head * g.head_dim;
                        let origin = (b * self.heads + head) * per_head;
                        let (p, w) = (&probs[origin..][..per_head], &weights[origin..][..per_head]);
                        // dV = W^T dO, with W the probabilities after dropout.
                        let d_out_head = Source::Rows(g.head(d_out, head));
                        let d_out_head = kernel.pack(f32s, g.queries, g.head_dim, d_out_head);
                        let w_t = Lhs::Transposed(g.scores(w));
                        kernel.product(w_t, g.keys, &d_out_head, None, &mut dv[first..], g.hidden);
                        // dW = dO V^T, then back through dropout and the softmax:
                        // dS = scale * P * (dP - sum_j dP P).
                        let values_t = Source::Columns(g.head(v, head));
                        let values_t = kernel.pack(f32s, g.head_dim, g.keys, values_t);
                        let d_out_rows = Lhs::Rows(g.head_strided(d_out, head));
                        kernel.product(
                            d_out_rows,
                            g.queries,
                            &values_t,
                            None,
                            &mut d_scores,
                            g.keys,
                        );
                        // [queries, keys]: the gradient of the scaled scores, kept for the bias.
                        let d_head_logits = d_logits
                            .as_deref_mut()
                            .map(|d_logits| &mut d_logits[head * per_head..][..per_head]);
                        vectorized(
                            #[inline(always)]
                            || {
                                let row = g.keys.max(1);
                                let rows =
                                    d_scores.chunks_mut(row).zip(p.chunks(row)).zip(w.chunks(row));
                                let mut d_logit_rows = d_head_logits.map(|d| d.chunks_mut(row));
                                for ((ds, p), w) in rows {
                                    if let Some(dropout) = self.dropout {
                                        for (d, &w) in ds.iter_mut().zip(w) {
                                            *d = dropout.through(w, *d);
                                        }
                                    }
                                    let total = dot(ds, p);
                                    match d_logit_rows.as_mut().and_then(Iterator::next) {
                                        None => {
                                            for (d, &p) in ds.iter_mut().zip(p) {
                                                *d = self.scale * p * (*d - total);
                                            }
                                        }
                                        Some(d_logits) => {
                                            let row = ds.iter_mut().zip(p).zip(d_logits);
                                            for ((d, &p), d_logit) in row {
                                                *d_logit = p * (*d - total);
                                                *d = self.scale * *d_logit;
                                            }
                                        }
                                    }
                                }
                            },
                        );
                        // dQ = dS K, dK = dS^T Q
                        let keys =
                            kernel.pack(f32s, g.keys, g.head_dim, Source::Rows(g.head(k, head)));
                        let ds = Lhs::Rows(g.scores(&d_scores));
                        kernel.product(ds, g.queries, &keys, None, &mut dq[first..], g.hidden);
                        let queries = Source::Rows(g.head(q, head));
                        let queries = kernel.pack(f32s, g.queries, g.head_dim, queries);
                        let ds_t = Lhs::Transposed(g.scores(&d_scores));
                        kernel.product(ds_t, g.keys, &queries, None, &mut dk[first..], g.hidden);
                    }
                });
        }
        let d_bias = bias_shape.map(|shape| {
            let d_bias = if shape[0] == batch { d_logits } else { batch_sum(&d_logits, batch) };
            tensor_of(d_bias, shape)
        });
        let like =
            |grad: Vec<f32>, input: &FlexTensor| tensor_of(grad, input.layout().shape().clone());
        ([like(dq, &q), like(dk, &k), like(dv, &v)], d_bias)
    }
}

/// `values` (`[batch, rest]`) summed over its first dimension, in parallel over `rest`.
fn batch_sum(values: &[f32], batch: usize) -> Vec<f32> {
    let len = values.len() / batch.max(1);
    let mut total = vec![0f32; len];
    let chunk = len.div_ceil(rayon::current_num_threads().max(1) * 4).max(1);
    total.par_chunks_mut(chunk).enumerate().for_each(|(task, total)| {
        let at = task * chunk;
        for b in 0..batch {
            for (t, &v) in total.iter_mut().zip(&values[b * len + at..]) {
                *t += v;
            }
        }
    });
    total
}

/// `saved`, or `scratch` grown to `len` zeros.
fn saved_or<'a>(
    saved: Option<&'a mut [f32]>,
    scratch: &'a mut Vec<f32>,
    len: usize,
) -> &'a mut [f32] {
    match saved {
        Some(saved) => saved,
        None => {
            scratch.resize(len, 0.0);
            scratch
        }
    }
}

/// A batch element's rows of `q` (`q_rows` values) and of `k` and `v` (`kv_rows` each).
fn rows_of(b: usize, [q, k, v]: [&[f32]; 3], q_rows: usize, kv_rows: usize) -> [&[f32]; 3] {
    [&q[b * q_rows..][..q_rows], &k[b * kv_rows..][..kv_rows], &v[b * kv_rows..][..kv_rows]]
}

/// `q`, `k`, `v`.
impl FusedOp<3> for FusedAttention {
    type Saved = Option<Saved>;

    fn forward(&self, inputs: [FlexTensor; 3]) -> (FlexTensor, Option<Saved>) {
        self.run(inputs, None)
    }

    fn backward(
        &self,
        saved: Option<Saved>,
        grad: FlexTensor,
        wanted: [bool; 3],
    ) -> [Option<FlexTensor>; 3] {
        let ([dq, dk, dv], _) = self.gradients(saved, grad, false);
        let keep = |grad: FlexTensor, wanted: bool| wanted.then_some(grad);
        [keep(dq, wanted[0]), keep(dk, wanted[1]), keep(dv, wanted[2])]
    }
}

/// `q`, `k`, `v` and the score bias.
impl FusedOp<4> for FusedAttention {
    type Saved = Option<Saved>;

    fn forward(&self, [q, k, v, bias]: [FlexTensor; 4]) -> (FlexTensor, Option<Saved>) {
        self.run([q, k, v], Some(&bias))
    }

    fn backward(
        &self,
        saved: Option<Saved>,
        grad: FlexTensor,
        wanted: [bool; 4],
    ) -> [Option<FlexTensor>; 4] {
        let ([dq, dk, dv], d_bias) = self.gradients(saved, grad, wanted[3]);
        let keep = |grad: FlexTensor, wanted: bool| wanted.then_some(grad);
        [keep(dq, wanted[0]), keep(dk, wanted[1]), keep(dv, wanted[2]), d_bias]
    }
}

#[cfg(test)]
mod tests {
    use super::{Geometry, batch_sum};

    #[test]
    fn a_causal_query_sees_the_keys_up_to_its_shifted_diagonal() {
        // Three queries over five keys (two before the queries' own): keys 0..=2, 0..=3, 0..=4.
        let g = Geometry { queries: 3, keys: 5, hidden: 4, head_dim: 2 };
        let causal: Vec<usize> = (0..3).map(|i| g.visible(i, true)).collect();
        assert_eq!(causal, [3, 4, 5]);
        assert!((0..3).all(|i| g.visible(i, false) == 5));
    }

    #[test]
    fn batch_sum_adds_the_rows_of_the_first_dimension() {
        // [3, 4]: rows 0..4, 4..8, 8..12.
        let values: Vec<f32> = (0..12).map(|x| x as f32).collect();
        assert_eq!(batch_sum(&values, 3), [12.0, 15.0, 18.0, 21.0]);
    }
}
