//! Disentangled self-attention (transformers' `DisentangledSelfAttention`, DeBERTa-v2 / v3):
//! content-to-content scores plus the content-to-position (`c2p`: query x relative-position key)
//! and position-to-content (`p2c`: key x relative-position query) terms, all divided by
//! `sqrt(head_dim * (1 + number of relative terms))`; relative distances optionally
//! log-bucketed (`make_log_bucket_position`) and clamped to the embedding span; the relative
//! embeddings projected by the content projections (`share_att_key`) or by their own
//! `pos_key_proj` / `pos_query_proj`.
//!
//! Seams: the query, key and value linear sites (`query_proj`, `key_proj`, `value_proj`; with
//! `share_att_key` the relative embeddings go through the same sites, hooks included, as PEFT's
//! replaced modules do), and the attention prefix, whose keys take part in the relative terms as
//! [`PrefixRelativePosition`] says.

use burn::module::Module;
use burn::nn::{Dropout, Linear};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Int, Tensor, backend::Backend};
use pet_core::blocks::attention::{project, with_prefix};
pub use pet_core::seam::PrefixRelativePosition;
use pet_core::{AttentionPrefix, Delta, LinearKind};
use pet_kernels::{dropout, merge_heads, split_heads};

/// Transformers' `make_log_bucket_position` for one distance: distances within
/// `bucket_size / 2` stay exact, longer ones share logarithmic buckets up to `max_position`.
/// Computed in `f32`, as PyTorch computes it.
pub fn make_log_bucket_position(relative: i64, bucket_size: i64, max_position: i64) -> i64 {
    let mid = bucket_size / 2;
    let abs = if relative < mid && relative > -mid { mid - 1 } else { relative.abs() };
    if abs <= mid {
        return relative;
    }
    let ratio = ((max_position - 1) as f64 / mid as f64) as f32;
    let log = ((abs as f32 / mid as f32).ln() / ratio.ln() * (mid - 1) as f32).ceil() + mid as f32;
    log as i64 * relative.signum()
}

/// Indices into the relative-embedding table, `[queries, keys]` row-major: for query position
/// `q` and key position `k`, `clamp(d + att_span, 0, 2 * att_span - 1)` with `d = q - k`,
/// log-bucketed when `position_buckets > 0` (transformers' `build_relative_position`, then the
/// clamp of `disentangled_attention_bias`; c2p and p2c read the same index).
pub fn relative_index(
    queries: &[i64],
    keys: &[i64],
    position_buckets: i64,
    max_relative: i64,
    att_span: i64,
) -> Vec<i64> {
    let mut out = Vec::with_capacity(queries.len() * keys.len());
    for &q in queries {
        for &k in keys {
            let d = if position_buckets > 0 && max_relative > 0 {
                make_log_bucket_position(q - k, position_buckets, max_relative)
            } else {
                q - k
            };
            out.push((d + att_span).clamp(0, 2 * att_span - 1));
        }
    }
    out
}

/// The relative-position inputs of one forward pass, shared by every layer.
#[derive(Clone, Debug)]
pub struct RelativePositions<B: Backend> {
    /// `[2 * att_span, hidden]`: `encoder.rel_embeddings`, layer-normed when `norm_rel_ebd`
    /// says so.
    pub embeddings: Tensor<B, 2>,
    /// `[queries, keys - zero_columns]`: [`relative_index`] of the keys that take relative terms.
    pub index: Tensor<B, 2, Int>,
    /// Leading key columns (prefix keys under [`PrefixRelativePosition::ZeroBias`]) whose
    /// relative terms are zero.
    pub zero_columns: usize,
}

/// The options of one attention layer that are not parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionOptions {
    /// Attention heads.
    pub num_heads: usize,
    /// Relative embeddings take part (`relative_attention`).
    pub relative_attention: bool,
    /// The content-to-position term.
    pub c2p: bool,
    /// The position-to-content term.
    pub p2c: bool,
    /// Relative embeddings projected by `query_proj` / `key_proj`.
    pub share_att_key: bool,
    /// `1 + number of relative terms`.
    pub scale_factor: usize,
}

/// Query, key and value projections, the relative-position projections, and the dropouts
/// (`attention.self`).
#[derive(Module, Debug)]
pub struct DisentangledSelfAttention<B: Backend> {
    /// `hidden -> hidden`
    pub query_proj: Linear<B>,
    /// `hidden -> hidden`
    pub key_proj: Linear<B>,
    /// `hidden -> hidden`
    pub value_proj: Linear<B>,
    /// `hidden -> hidden` on relative embeddings for c2p, without `share_att_key`.
    pub pos_key_proj: Option<Linear<B>>,
    /// `hidden -> hidden` on relative embeddings for p2c, without `share_att_key`.
    pub pos_query_proj: Option<Linear<B>>,
    /// Dropout on attention probabilities.
    pub dropout: Dropout,
    /// Dropout on the relative embeddings (`hidden_dropout_prob`).
    pub pos_dropout: Dropout,
    /// Heads and relative-term options.
    #[module(skip)]
    pub options: AttentionOptions,
}

impl<B: Backend> DisentangledSelfAttention<B> {
    /// The attention context, before the output projection.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]` (prompt positions included)
    /// - `masked`: `[batch, 1, seq, n_prefix + seq]`, true where a query may not see a key
    /// - `prefix`: keys and values `[batch, heads, n_prefix, head_dim]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        masked: Tensor<B, 4, Bool>,
        relative: Option<&RelativePositions<B>>,
        prefix: Option<&AttentionPrefix<B>>,
        layer: usize,
        delta: &D,
    ) -> Tensor<B, 3> {
        let [batch, seq, _] = x.dims();
        let (scores, v) = self.scores(x, relative, prefix, layer, delta);
        let [_, heads, _, keys] = scores.dims();
        // Masked scores take the lowest float (`masked_fill`, no gradient), so a padded query,
        // which sees no key, averages every value as in transformers.
        let scores = scores.mask_fill(masked.expand([batch, heads, seq, keys]), f32::MIN);
        let probs = dropout(softmax(scores, 3), self.dropout.prob);
        // [batch, seq, hidden]
        merge_heads(probs.matmul(v))
    }

    /// The attention scores before the mask and the softmax: content scores plus the relative
    /// terms, divided by `sqrt(head_dim * scale_factor)`; and the values.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`; `prefix`: `[batch, heads, n_prefix, head_dim]`
    /// - output: scores `[batch, heads, seq, n_prefix + seq]`, values
    ///   `[batch, heads, n_prefix + seq, head_dim]`
    pub fn scores<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        relative: Option<&RelativePositions<B>>,
        prefix: Option<&AttentionPrefix<B>>,
        layer: usize,
        delta: &D,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [_, _, hidden] = x.dims();
        let heads = self.options.num_heads;
        let head_dim = hidden / heads;
        // [batch, heads, seq, head_dim]
        let q = split_heads(
            project(&self.query_proj, layer, LinearKind::Query, x.clone(), delta),
            heads,
        );
        // [batch, heads, n_prefix + seq, head_dim]
        let k = project(&self.key_proj, layer, LinearKind::Key, x.clone(), delta);
        let k = split_heads(with_prefix(k, prefix.map(|p| &p.key)), heads);
        let v = project(&self.value_proj, layer, LinearKind::Value, x, delta);
        let v = split_heads(with_prefix(v, prefix.map(|p| &p.value)), heads);
        // sqrt(head_dim * scale_factor), in f32 as transformers' `scaled_size_sqrt`
        let scale = ((head_dim * self.options.scale_factor) as f32).sqrt() as f64;
        // [batch, heads, seq, n_prefix + seq]
        let mut scores = q.clone().matmul(k.clone().swap_dims(2, 3)) / scale;
        if let Some(relative) = relative.filter(|_| self.options.relative_attention) {
            scores = scores + self.relative_bias(q, k, relative, layer, delta) / scale;
        }
        (scores, v)
    }

    /// The c2p and p2c terms, not yet scaled (`disentangled_attention_bias`).
    ///
    /// # Shapes
    /// - `q`: `[batch, heads, seq, head_dim]`, `k`: `[batch, heads, keys, head_dim]`
    /// - output: `[batch, heads, seq, keys]`, zero in the first `zero_columns` keys
    fn relative_bias<D: Delta<B>>(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        relative: &RelativePositions<B>,
        layer: usize,
        delta: &D,
    ) -> Tensor<B, 4> {
        let [batch, heads, seq, head_dim] = q.dims();
        let keys = k.dims()[2];
        let zero = relative.zero_columns;
        // [batch, heads, keys - zero, head_dim]: the keys that take relative terms
        let k = k.narrow(2, zero, keys - zero);
        let [span2, _] = relative.embeddings.dims();
        // [1, 2 * att_span, hidden]
        let rel = dropout(relative.embeddings.clone(), self.pos_dropout.prob).unsqueeze::<3>();
        // [batch, heads, head_dim, 2 * att_span]
        let pos_heads = |t: Tensor<B, 3>| {
            t.reshape([1, span2, heads, head_dim])
                .swap_dims(1, 2)
                .swap_dims(2, 3)
                .expand([batch, heads, head_dim, span2])
        };
        let shared = |linear: &Linear<B>, kind| project(linear, layer, kind, rel.clone(), delta);
        let mut bias = Tensor::<B, 4>::zeros([batch, heads, seq, keys - zero], &q.device());
        if self.options.c2p {
            let pos_key = match &self.pos_key_proj {
                Some(linear) if !self.options.share_att_key => linear.forward(rel.clone()),
                _ => shared(&self.key_proj, LinearKind::Key),
            };
            // [batch, heads, seq, 2 * att_span], read at index[q, k]
            let c2p = q.matmul(pos_heads(pos_key));
            let index =
                relative.index.clone().unsqueeze::<4>().expand([batch, heads, seq, keys - zero]);
            bias = bias + c2p.gather(3, index);
        }
        if self.options.p2c {
            let pos_query = match &self.pos_query_proj {
                Some(linear) if !self.options.share_att_key => linear.forward(rel.clone()),
                _ => shared(&self.query_proj, LinearKind::Query),
            };
            // [batch, heads, keys, 2 * att_span], read at index[q, k] for key k
            let p2c = k.matmul(pos_heads(pos_query));
            let index = relative.index.clone().transpose().unsqueeze::<4>().expand([
                batch,
                heads,
                keys - zero,
                seq,
            ]);
            bias = bias + p2c.gather(3, index).swap_dims(2, 3);
        }
        match zero {
            0 => bias,
            n => Tensor::cat(vec![Tensor::zeros([batch, heads, seq, n], &bias.device()), bias], 3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_buckets_keep_short_distances_and_share_long_ones() {
        // bucket_size 4 (mid 2), max_position 32, as transformers computes them.
        let buckets: Vec<i64> = (-7..=7).map(|d| make_log_bucket_position(d, 4, 32)).collect();
        assert_eq!(buckets, [-3, -3, -3, -3, -3, -2, -1, 0, 1, 2, 3, 3, 3, 3, 3]);
        // bucket_size 256 (DeBERTa-v3), max_position 512: exact up to 128, then logarithmic.
        assert_eq!(make_log_bucket_position(128, 256, 512), 128);
        assert_eq!(make_log_bucket_position(129, 256, 512), 129);
        assert_eq!(make_log_bucket_position(-511, 256, 512), -255);
        assert_eq!(make_log_bucket_position(200, 256, 512), 169);
    }

    #[test]
    fn relative_index_clamps_to_the_span() {
        // Positions 0..3 against themselves, span 1: d + 1 clamped into [0, 1].
        let index = relative_index(&[0, 1, 2], &[0, 1, 2], -1, 1, 1);
        assert_eq!(index, [1, 0, 0, 1, 1, 0, 1, 1, 1]);
        // Span 2: d + 2 clamped into [0, 3]; a key before the first token (position -1).
        let index = relative_index(&[0, 2], &[-1, 0, 1], -1, 2, 2);
        assert_eq!(index, [3, 2, 1, 3, 3, 3]);
    }
}
