//! Multi-head self-attention with its seams: the query, key and value linear sites, and the
//! per-layer key/value prefix (Hugging Face's `BertSelfAttention`, eager path).

use burn::module::Module;
use burn::nn::{Dropout, Linear};
use burn::tensor::{Tensor, backend::Backend};

use pet_kernels::attention;

use crate::delta::Delta;
use crate::seam::{AttentionPrefix, LinearKind, LinearSite};

/// Query, key and value projections and the attention-probability dropout.
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    /// `hidden -> hidden`
    pub query: Linear<B>,
    /// `hidden -> hidden`
    pub key: Linear<B>,
    /// `hidden -> hidden`
    pub value: Linear<B>,
    /// Dropout on attention probabilities.
    pub dropout: Dropout,
    /// Attention heads.
    pub num_heads: usize,
}

/// Runs linear `linear` at site `(layer, kind)` with `delta` hooked in.
pub fn project<B: Backend, D: Delta<B>>(
    linear: &Linear<B>,
    layer: usize,
    kind: LinearKind,
    input: Tensor<B, 3>,
    delta: &D,
) -> Tensor<B, 3> {
    let output = pet_kernels::linear(linear, input.clone());
    delta.linear(LinearSite::encoder(layer, kind), input, output)
}

impl<B: Backend> SelfAttention<B> {
    /// The attention context, before the output projection.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`
    /// - `mask_bias`: `[batch, n_prefix + seq]`, 0 where attended, the lowest float elsewhere
    /// - `prefix`: keys and values `[batch, heads, n_prefix, head_dim]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        mask_bias: Tensor<B, 2>,
        prefix: Option<&AttentionPrefix<B>>,
        layer: usize,
        delta: &D,
    ) -> Tensor<B, 3> {
        let [_, _, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        // [batch, seq, hidden]
        let q = project(&self.query, layer, LinearKind::Query, x.clone(), delta);
        // [batch, seq, hidden]
        let k = project(&self.key, layer, LinearKind::Key, x.clone(), delta);
        let v = project(&self.value, layer, LinearKind::Value, x, delta);
        // [batch, n_prefix, hidden] each
        let prefix = prefix.map(|p| (prefix_rows(&p.key), prefix_rows(&p.value)));
        // A bf16 model (`crate::precision`) takes its attention products in bf16 too.
        let products = self.query.weight.val().dtype();
        let scale = 1.0 / (head_dim as f64).sqrt();
        // [batch, seq, hidden]
        attention(q, k, v, prefix, mask_bias, self.num_heads, scale, products, self.dropout.prob)
    }
}

/// `[prefix rows; rows]` along the sequence: keys or values `[batch, seq, hidden]` with a layer's
/// prefix (`[batch, heads, n_prefix, head_dim]`, as [`AttentionPrefix`] holds it) in front. The
/// join happens while keys and values are still rows, so the concatenation copies whole rows;
/// heads are taken from the rows after.
///
/// # Shapes
/// - output: `[batch, n_prefix + seq, hidden]`
pub fn with_prefix<B: Backend>(rows: Tensor<B, 3>, prefix: Option<&Tensor<B, 4>>) -> Tensor<B, 3> {
    match prefix {
        Some(p) => Tensor::cat(vec![prefix_rows(p), rows], 1),
        None => rows,
    }
}

/// A layer's prefix keys or values (`[batch, heads, n_prefix, head_dim]`) as rows.
///
/// # Shapes
/// - output: `[batch, n_prefix, heads * head_dim]`
pub fn prefix_rows<B: Backend>(prefix: &Tensor<B, 4>) -> Tensor<B, 3> {
    let [batch, heads, n_prefix, head_dim] = prefix.dims();
    prefix.clone().swap_dims(1, 2).reshape([batch, n_prefix, heads * head_dim])
}

/// The additive attention mask: 0 for keys to attend to, the lowest `f32` for the others, as
/// Hugging Face's `get_extended_attention_mask`.
///
/// # Shapes
/// - `key_mask`: `[batch, keys]` with 1.0 / 0.0; output: `[batch, keys]`
pub fn mask_bias<B: Backend>(key_mask: Tensor<B, 2>) -> Tensor<B, 2> {
    (key_mask.neg() + 1.0) * f32::MIN as f64
}
