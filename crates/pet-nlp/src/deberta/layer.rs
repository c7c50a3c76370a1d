//! The DeBERTa-v2 layer (transformers' `DebertaV2Layer`): disentangled attention in pet-core's
//! [`PostNormLayer`] (BERT's output block, feed-forward and output block, with their
//! linear-site and sub-layer seams); and the convolution beside layer 0 (`ConvLayer`).

use burn::module::Module;
use burn::nn::conv::Conv1d;
use burn::nn::{Dropout, Linear};
use burn::tensor::{Bool, Tensor, backend::Backend};
use pet_core::blocks::Activation;
use pet_core::blocks::layer::{LayerAttention, PostNormLayer};
use pet_core::{AttentionPrefix, Delta, LinearKind};
use pet_kernels::LayerNorm;

use crate::deberta::attention::{DisentangledSelfAttention, RelativePositions};
use pet_kernels::dropout;

/// One DeBERTa-v2 layer (`encoder.layer.N`): disentangled attention in pet-core's
/// [`PostNormLayer`].
pub type DebertaLayer<B> = PostNormLayer<B, DisentangledSelfAttention<B>>;

/// What every DeBERTa layer's attention reads besides its input, computed once per pass.
#[derive(Clone, Debug)]
pub struct DebertaContext<B: Backend> {
    /// `[batch, 1, seq, n_prefix + seq]`, true where a query may not see a key.
    pub masked: Tensor<B, 4, Bool>,
    /// The relative embeddings and indices, with `relative_attention`.
    pub relative: Option<RelativePositions<B>>,
}

impl<B: Backend> LayerAttention<B> for DisentangledSelfAttention<B> {
    type Context = DebertaContext<B>;

    fn forward<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        context: &DebertaContext<B>,
        prefix: Option<&AttentionPrefix<B>>,
        layer: usize,
        delta: &D,
    ) -> Tensor<B, 3> {
        let relative = context.relative.as_ref();
        DisentangledSelfAttention::forward(
            self,
            x,
            context.masked.clone(),
            relative,
            prefix,
            layer,
            delta,
        )
    }

    fn projection(&self, kind: LinearKind) -> &Linear<B> {
        match kind {
            LinearKind::Query => &self.query_proj,
            LinearKind::Key => &self.key_proj,
            LinearKind::Value => &self.value_proj,
            other => panic!("expected a query, key or value projection, got {other:?}"),
        }
    }

    fn projection_mut(&mut self, kind: LinearKind) -> &mut Linear<B> {
        match kind {
            LinearKind::Query => &mut self.query_proj,
            LinearKind::Key => &mut self.key_proj,
            LinearKind::Value => &mut self.value_proj,
            other => panic!("expected a query, key or value projection, got {other:?}"),
        }
    }

    fn projection_name(kind: LinearKind) -> &'static str {
        match kind {
            LinearKind::Query => "query_proj",
            LinearKind::Key => "key_proj",
            LinearKind::Value => "value_proj",
            other => panic!("expected a query, key or value projection, got {other:?}"),
        }
    }
}

/// The convolution over the embeddings whose output joins layer 0's (`encoder.conv`):
/// `mask * layer_norm(layer0 + act(dropout(conv(embeddings) with padding zeroed)))`.
#[derive(Module, Debug)]
pub struct ConvLayer<B: Backend> {
    /// `[hidden, hidden / groups, kernel]`, padding `(kernel - 1) / 2` on both sides.
    pub conv: Conv1d<B>,
    /// Layer norm of the sum (`encoder.conv.LayerNorm`).
    pub layer_norm: LayerNorm<B>,
    /// Dropout on the convolution's output.
    pub dropout: Dropout,
    /// `conv_act`.
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> ConvLayer<B> {
    /// # Shapes
    /// - `embeddings`, `residual`: `[batch, seq, hidden]`; `mask`: `[batch, seq]`, 1.0 to keep
    /// - output: `[batch, seq, hidden]`
    pub fn forward(
        &self,
        embeddings: Tensor<B, 3>,
        residual: Tensor<B, 3>,
        mask: Tensor<B, 2>,
    ) -> Tensor<B, 3> {
        let [batch, seq, hidden] = embeddings.dims();
        // [batch, seq, 1] -> [batch, seq, hidden]
        let keep = mask.unsqueeze_dim::<3>(2).expand([batch, seq, hidden]);
        // [batch, seq, hidden]
        let out = self.conv.forward(embeddings.swap_dims(1, 2)).swap_dims(1, 2);
        let out = out.mask_fill(keep.clone().lower_elem(0.5), 0.0);
        let out = self.activation.forward(dropout(out, self.dropout.prob));
        self.layer_norm.forward(residual + out) * keep
    }
}
