//! Multi-head scaled dot-product attention from projected rows, as BERT-style encoders compute
//! it: per head, `softmax(q k^T * scale + mask_bias) v`.
//!
//! Burn composes it from a head split (a copy), a batched matmul per head (burn-flex calls a
//! GEMM per `[queries x head_dim] x [head_dim x keys]` matrix: 64-68 GFLOP/s against ~190 for
//! the linears), the score and probability tensors (`[batch, heads, queries, keys]`, written to
//! fresh memory twice), a second batched matmul and a head merge (another copy); its backward
//! has four more per-head products and the copies again. On burn-flex with `pet_gemm`'s kernel,
//! [`attention`] instead runs each batch element as one task: per head, the keys and values
//! are packed straight from the `[keys, hidden]` rows, the scores of all queries land in a
//! buffer that stays in cache, the softmax (and dropout, whose mask is the one
//! [`crate::dropout`] draws for the composed probabilities) runs on it, and the context is
//! written into its head's columns of the output rows. Under autodiff it is one operation that
//! keeps the probabilities and runs the four backward products the same way.
//!
//! Everywhere else (other backends, a CPU without the kernel, bf16 under autodiff) the composed
//! operations run, with [`crate::attention_probs`] and [`crate::dropout`]. The products round
//! their operands to bf16 when asked (`products`), as a bf16 model's attention does.

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};
use burn_flex::FlexTensor;
use pet_gemm::{Kernel, Lhs, Operands, Rows, Source, Strided};
use rayon::prelude::*;

use crate::attention_probs::{dot, softmax_row};
use crate::dispatch::{
    FlexAutodiff, Route, flex, flex_f32, from_flex, recast, route, tensor_of, values,
};
use crate::dropout::{Dropout, draw_seed};
use crate::fused::{FusedOp, infer, primitive, record, wrap};
use crate::parallel::vectorized;
use crate::{attention_probs, dropout, merge_heads, split_heads};

/// The attention context of `heads` heads, before the output projection.
///
/// `products` is the element type the two products round their operands to: `DType::BF16` for
/// a bf16 model, anything else for `f32`. Dropout on the probabilities (`dropout_prob`) applies
/// under autodiff, as [`crate::dropout`] does.
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
    let [batch, _, hidden] = q.dims();
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
    assert!((0.0..=1.0).contains(&dropout_prob), "dropout probability {dropout_prob}");
    let operands = if products == DType::BF16 { Operands::Bf16 } else { Operands::F32 };
    let kernel = Kernel::detect();
    let q = match (route(q), kernel) {
        (Route::Flex(q), Some(kernel)) => {
            let mask_bias = recast(mask_bias);
            let mut op =
                FusedAttention::new(kernel, mask_bias, heads, scale, operands, None, false);
            op.prefix = prefix.map(|(pk, pv)| [pk, pv].map(|t| flex(recast(t))));
            let inputs = [q, recast(k), recast(v)].map(|t| t.into_primitive().tensor());
            return recast(from_flex::<3>(infer(&op, inputs)));
        }
        (Route::Autodiff(q), Some(kernel)) if operands == Operands::F32 => {
            let (k, v) = joined(prefix, k, v);
            let mask_bias = recast::<B, FlexAutodiff, 2>(mask_bias).inner();
            let dropout = (dropout_prob > 0.0).then(|| Dropout::new(dropout_prob, draw_seed()));
            let op = FusedAttention::new(kernel, mask_bias, heads, scale, operands, dropout, true);
            let inputs = [q, recast(k), recast(v)].map(primitive);
            return recast(wrap::<3>(record(op, inputs)));
        }
        (Route::Flex(q), _) => recast(q),
        (Route::Autodiff(q), _) => recast(q),
        (Route::Composed(q), _) => q,
    };
    let (k, v) = joined(prefix, k, v);
    composed(q, k, v, mask_bias, heads, scale, operands, dropout_prob)
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

/// The fused kernel pair, one task per batch element, heads one after the other.
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
    fn bias(&self, b: usize, keys: usize) -> &[f32] {
        let mask = values(&self.mask_bias);
        if mask.len() == keys { mask } else { &mask[b * keys..][..keys] }
    }

    /// Batch element `b`: `out` (`[queries, hidden]`) from its rows of `q`, `k`, `v`. `probs`
    /// and `kept` (the probabilities after dropout) receive each head's values
    /// (`[heads, queries, keys]`) or, with room for one head only, are scratch.
    #[allow(clippy::too_many_arguments)]
    fn element(
        &self,
        g: Geometry,
        b: usize,
        [q, k, v]: [&[f32]; 3],
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
        let bias = self.bias(b, g.keys);
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
            vectorized(
                #[inline(always)]
                || {
                    let row = g.keys.max(1);
                    for (scores, probs) in scores.chunks(row).zip(probs.chunks_mut(row)) {
                        softmax_row(scores, bias, self.scale, probs);
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

impl FusedOp<3> for FusedAttention {
    type Saved = Option<Saved>;

    fn forward(&self, [q, k, v]: [FlexTensor; 3]) -> (FlexTensor, Option<Saved>) {
        let n_prefix = self.prefix.as_ref().map_or(0, |[keys, _]| keys.layout().shape()[1]);
        let (batch, g) = Geometry::of(&q, &k, self.heads, n_prefix);
        let shape = q.layout().shape().clone();
        let inputs = [values(&q), values(&k), values(&v)];
        let (q_rows, kv_rows) = (g.queries * g.hidden, (g.keys - n_prefix) * g.hidden);
        let per_head = g.queries * g.keys;
        let per_element = self.heads * per_head;
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
                self.element(g, b, rows, out, probs, kept);
            });
        }
        let out = tensor_of(out, shape);
        let shape = [batch, self.heads, g.queries, g.keys];
        let saved = self.training.then(|| Saved {
            probs: tensor_of(probs, shape.into()),
            kept: keep_kept.then(|| tensor_of(kept, shape.into())),
            q,
            k,
            v,
        });
        (out, saved)
    }

    fn backward(
        &self,
        saved: Option<Saved>,
        grad: FlexTensor,
        wanted: [bool; 3],
    ) -> [Option<FlexTensor>; 3] {
        let Some(Saved { q, k, v, probs, kept }) = saved else {
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
        let kernel = self.kernel;
        let f32s = Operands::F32;
        let mut dq = vec![0f32; batch * q_rows];
        let mut dk = vec![0f32; batch * kv_rows];
        let mut dv = vec![0f32; batch * kv_rows];
        if q_rows > 0 && kv_rows > 0 {
            dq.par_chunks_mut(q_rows)
                .zip(dk.par_chunks_mut(kv_rows))
                .zip(dv.par_chunks_mut(kv_rows))
                .enumerate()
                .for_each(|(b, ((dq, dk), dv))| {
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
                        vectorized(
                            #[inline(always)]
                            || {
                                let row = g.keys.max(1);
                                let rows =
                                    d_scores.chunks_mut(row).zip(p.chunks(row)).zip(w.chunks(row));
                                for ((ds, p), w) in rows {
                                    if let Some(dropout) = self.dropout {
                                        for (d, &w) in ds.iter_mut().zip(w) {
                                            *d = dropout.through(w, *d);
                                        }
                                    }
                                    let total = dot(ds, p);
                                    for (d, &p) in ds.iter_mut().zip(p) {
                                        *d = self.scale * p * (*d - total);
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
        let shapes = [q, k, v].map(|t| t.layout().shape().clone());
        let mut grads = [dq, dk, dv].into_iter().zip(shapes).map(|(g, shape)| tensor_of(g, shape));
        wanted.map(|wanted| grads.next().filter(|_| wanted))
    }
}
