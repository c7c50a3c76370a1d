//! The post-layer-norm encoder (Hugging Face's `BertModel`): embeddings, a stack of
//! [`PostNormLayer`]s and an optional pooler, implementing [`Backbone`] with every seam.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{DropoutConfig, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Int, Tensor, backend::Backend};
use pet_kernels::LayerNorm;

use crate::backbone::{Backbone, BackboneIdentity, EncoderOutput};
use crate::blocks::activation::Activation;
use crate::blocks::attention::{SelfAttention, mask_bias};
use crate::blocks::embeddings::{Embeddings, PositionIds};
use crate::blocks::layer::{
    AddNorm, AttentionBlock, Intermediate, LinearSiteLayer, PostNormLayer, stack_linear_sites,
};
use crate::delta::Delta;
use crate::seam::{AttentionPrefix, BackboneShape, LinearSite, LinearSiteInfo, PrefixPositions};

/// Sizes and options, with Hugging Face's `config.json` field names.
#[derive(Config, Debug, PartialEq)]
pub struct PostNormEncoderConfig {
    /// Architecture name (`bert`, `roberta`), part of the backbone identity.
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Heads per layer.
    pub num_attention_heads: usize,
    /// Feed-forward size.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    #[config(default = "Activation::Gelu")]
    pub hidden_act: Activation,
    /// Dropout on hidden states.
    #[config(default = 0.1)]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[config(default = 0.1)]
    pub attention_probs_dropout_prob: f64,
    /// Absolute positions.
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    /// Token types (0: none).
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// Layer-norm epsilon.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Position numbering.
    #[config(default = "PositionIds::Absolute")]
    pub position_ids: PositionIds,
    /// Position numbering under attention prefixes.
    #[config(default = "PrefixPositions::Offset")]
    pub prefix_positions: PrefixPositions,
    /// Whether the model has BERT's pooler (dense + tanh on the first token).
    #[config(default = true)]
    pub with_pooler: bool,
    /// Padding token id; its word-embedding row gets no gradient, as in transformers.
    #[config(default = "None")]
    pub pad_token_id: Option<usize>,
}

/// Token ids, attention mask and optional token types.
#[derive(Clone, Debug)]
pub struct EncoderInput<B: Backend> {
    /// `[batch, seq]`
    pub input_ids: Tensor<B, 2, Int>,
    /// `[batch, seq]`, 1.0 for real tokens and 0.0 for padding.
    pub attention_mask: Tensor<B, 2>,
    /// `[batch, seq]`, zeros when absent.
    pub token_type_ids: Option<Tensor<B, 2, Int>>,
}

impl<B: Backend> EncoderInput<B> {
    /// Ids and mask, no token types.
    pub fn new(input_ids: Tensor<B, 2, Int>, attention_mask: Tensor<B, 2>) -> Self {
        Self { input_ids, attention_mask, token_type_ids: None }
    }
}

/// The layer stack (`encoder.layer.N`).
#[derive(Module, Debug)]
pub struct LayerStack<B: Backend> {
    /// The layers.
    pub layer: Vec<PostNormLayer<B>>,
}

/// BERT's pooler: `tanh(dense(hidden[:, 0]))`.
#[derive(Module, Debug)]
pub struct Pooler<B: Backend> {
    /// `hidden -> hidden`
    pub dense: Linear<B>,
}

/// A post-layer-norm encoder.
#[derive(Module, Debug)]
pub struct PostNormEncoder<B: Backend> {
    /// Embeddings.
    pub embeddings: Embeddings<B>,
    /// Layers.
    pub encoder: LayerStack<B>,
    /// Pooler, when the model has one.
    pub pooler: Option<Pooler<B>>,
    /// The config it was built from.
    #[module(skip)]
    pub config: PostNormEncoderConfig,
    /// SHA-256 of the weights file it was loaded from, part of its identity.
    #[module(skip)]
    pub weights_sha256: Option<String>,
}

impl PostNormEncoderConfig {
    /// Builds the encoder with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> PostNormEncoder<B> {
        let h = self.hidden_size;
        let norm = || LayerNorm::new(h, self.layer_norm_eps, device);
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        let dropout = || DropoutConfig::new(self.hidden_dropout_prob).init();
        let embeddings = Embeddings {
            word_embeddings: EmbeddingConfig::new(self.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, h).init(device),
            token_type_embeddings: (self.type_vocab_size > 0)
                .then(|| EmbeddingConfig::new(self.type_vocab_size, h).init(device)),
            layer_norm: norm(),
            dropout: dropout(),
            position_ids: self.position_ids,
            prefix_positions: self.prefix_positions,
            pad_token_id: self.pad_token_id,
        };
        let layer = (0..self.num_hidden_layers)
            .map(|_| PostNormLayer {
                attention: AttentionBlock {
                    self_attention: SelfAttention {
                        query: linear(h, h),
                        key: linear(h, h),
                        value: linear(h, h),
                        dropout: DropoutConfig::new(self.attention_probs_dropout_prob).init(),
                        num_heads: self.num_attention_heads,
                    },
                    output: AddNorm { dense: linear(h, h), layer_norm: norm(), dropout: dropout() },
                },
                intermediate: Intermediate {
                    dense: linear(h, self.intermediate_size),
                    activation: self.hidden_act,
                },
                output: AddNorm {
                    dense: linear(self.intermediate_size, h),
                    layer_norm: norm(),
                    dropout: dropout(),
                },
            })
            .collect();
        PostNormEncoder {
            embeddings,
            encoder: LayerStack { layer },
            pooler: self.with_pooler.then(|| Pooler { dense: linear(h, h) }),
            config: self.clone(),
            weights_sha256: None,
        }
    }
}

/// `mask` with `n` ones in front: the mask over `n` prompt or prefix positions, which every query
/// sees, followed by the positions of `mask`.
///
/// # Shapes
/// - `mask`: `[batch, seq]`; output: `[batch, n + seq]`
pub fn with_leading_ones<B: Backend>(mask: Tensor<B, 2>, n: usize) -> Tensor<B, 2> {
    match n {
        0 => mask,
        n => {
            let [batch, _] = mask.dims();
            Tensor::cat(vec![Tensor::ones([batch, n], &mask.device()), mask], 1)
        }
    }
}

/// `x` with its first `prompt_len` positions replaced by `delta`'s prompt for layer `layer` (the
/// per-layer prompt seam, VPT-deep), or `x` unchanged when the delta has none.
///
/// # Shapes
/// - `x`: `[batch, n_prompt + seq, hidden]`; output: the same
pub fn apply_layer_prompt<B: Backend, D: Delta<B>>(
    x: Tensor<B, 3>,
    layer: usize,
    prompt_len: usize,
    delta: &D,
) -> Tensor<B, 3> {
    let [batch, total, _] = x.dims();
    match delta.layer_prompt(layer, batch) {
        // [batch, n_prompt, hidden] + [batch, seq, hidden]
        Some(slots) => Tensor::cat(vec![slots, x.narrow(1, prompt_len, total - prompt_len)], 1),
        None => x,
    }
}

impl<B: Backend> Backbone<B> for PostNormEncoder<B> {
    type Input = EncoderInput<B>;
    type Output = EncoderOutput<B>;

    fn forward_with<D: Delta<B>>(&self, input: EncoderInput<B>, delta: &D) -> EncoderOutput<B> {
        let [batch, _] = input.input_ids.dims();
        let prompt = delta.input_prompt(batch);
        let prompt_len = prompt.as_ref().map_or(0, |p| p.dims()[1]);
        let prefixes = delta.attention_prefixes(batch);
        let prefix_len = prefixes.as_ref().and_then(|p| p.first()).map_or(0, AttentionPrefix::len);
        // [batch, n_prompt + seq, hidden]
        let mut x =
            self.embeddings.forward(input.input_ids, input.token_type_ids, prompt, prefix_len);
        // [batch, n_prompt + seq]
        let mask = with_leading_ones(input.attention_mask, prompt_len);
        // [batch, n_prefix + n_prompt + seq]
        let bias = mask_bias(with_leading_ones(mask.clone(), prefix_len));
        for (index, layer) in self.encoder.layer.iter().enumerate() {
            x = apply_layer_prompt(x, index, prompt_len, delta);
            let prefix = prefixes.as_ref().map(|p| &p[index]);
            x = layer.forward(x, bias.clone(), prefix, index, delta);
        }
        let pooled = self.pooler.as_ref().map(|pooler| {
            let [_, _, hidden] = x.dims();
            // [batch, hidden] from the first position
            pooler.dense.forward(x.clone().narrow(1, 0, 1).reshape([batch, hidden])).tanh()
        });
        EncoderOutput { hidden: x, mask, prompt_len, pooled }
    }

    fn shape(&self) -> BackboneShape {
        let c = &self.config;
        BackboneShape {
            num_layers: c.num_hidden_layers,
            hidden_size: c.hidden_size,
            num_heads: c.num_attention_heads,
            head_dim: c.hidden_size / c.num_attention_heads,
            vocab_size: c.vocab_size,
        }
    }

    fn linear_sites(&self) -> Vec<LinearSiteInfo> {
        stack_linear_sites(&self.encoder.layer, |layer| self.layer_path(layer))
    }

    fn linear_weight(&self, site: LinearSite) -> Tensor<B, 2> {
        self.encoder.layer[site.layer].linear_weight(site.kind)
    }

    fn with_linear_weight(mut self, site: LinearSite, weight: Tensor<B, 2>) -> Self {
        self.encoder.layer[site.layer].set_linear_weight(site.kind, weight);
        self
    }

    fn word_embeddings(&self) -> Tensor<B, 2> {
        self.embeddings.word_embeddings.weight.val()
    }

    fn layer_path(&self, layer: usize) -> String {
        format!("encoder.layer.{layer}.")
    }

    fn identity(&self) -> BackboneIdentity {
        BackboneIdentity {
            weights_sha256: self.weights_sha256.clone(),
            ..BackboneIdentity::from_config(&self.config.model_type, &self.config)
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;

    use super::*;
    use crate::testing::TestInner as B;

    /// Two prompt slots for layer 1 only.
    #[derive(Module, Clone, Debug)]
    struct LayerOneSlots<Bk: Backend> {
        slots: Param<Tensor<Bk, 3>>,
    }

    impl<Bk: Backend> Delta<Bk> for LayerOneSlots<Bk> {
        fn layer_prompt(&self, layer: usize, _batch: usize) -> Option<Tensor<Bk, 3>> {
            (layer == 1).then(|| self.slots.val())
        }
    }

    #[test]
    fn a_layer_prompt_replaces_the_prompt_positions_of_its_layer_only() {
        let device = Default::default();
        let x = Tensor::<B, 3>::from_data([[[1.0], [2.0], [3.0], [4.0]]], &device);
        let slots = Tensor::<B, 3>::from_data([[[8.0], [9.0]]], &device);
        let delta = LayerOneSlots { slots: Param::from_tensor(slots) };
        let layer0 = apply_layer_prompt(x.clone(), 0, 2, &delta);
        assert_eq!(layer0.into_data().to_vec::<f32>().expect("floats"), [1.0, 2.0, 3.0, 4.0]);
        let layer1 = apply_layer_prompt(x, 1, 2, &delta);
        assert_eq!(layer1.into_data().to_vec::<f32>().expect("floats"), [8.0, 9.0, 3.0, 4.0]);
    }

    #[test]
    fn leading_ones_go_in_front_of_the_mask() {
        let mask = Tensor::<B, 2>::from_data([[1.0, 0.0]], &Default::default());
        let same = with_leading_ones(mask.clone(), 0);
        assert_eq!(same.into_data().to_vec::<f32>().expect("floats"), [1.0, 0.0]);
        let longer = with_leading_ones(mask, 2);
        assert_eq!(longer.into_data().to_vec::<f32>().expect("floats"), [1.0, 1.0, 1.0, 0.0]);
    }
}
