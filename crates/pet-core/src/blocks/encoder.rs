//! The post-layer-norm encoder (Hugging Face's `BertModel`): embeddings, a stack of
//! [`PostNormLayer`]s and an optional pooler, implementing [`Backbone`] with every seam.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{DropoutConfig, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Int, Tensor, backend::Backend};
use pet_kernels::LayerNorm;

use crate::backbone::{Backbone, BackboneIdentity, EncoderOutput};
use crate::blocks::activation::Activation;
use crate::blocks::attention::{SelfAttention, mask_bias, project};
use crate::blocks::delta_inputs::DeltaInputs;
use crate::blocks::embeddings::{Embeddings, PositionIds};
use crate::blocks::layer::{
    LinearSiteLayer, PostNormLayer, PostNormLayerConfig, stack_linear_sites,
};
use crate::delta::Delta;
use crate::limits::InputLimits;
use crate::params::replace_value;
use crate::seam::{BackboneShape, LinearKind, LinearSite, LinearSiteInfo, PrefixPositions};

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

/// BERT's layer: [`SelfAttention`] in a [`PostNormLayer`].
pub type BertLayer<B> = PostNormLayer<B, SelfAttention<B>>;

/// The layer stack (`encoder.layer.N`).
#[derive(Module, Debug)]
pub struct LayerStack<B: Backend> {
    /// The layers.
    pub layer: Vec<BertLayer<B>>,
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
        let layer = PostNormLayerConfig::new(
            h,
            self.intermediate_size,
            self.hidden_act,
            self.layer_norm_eps,
            self.hidden_dropout_prob,
        )
        .stack(
            self.num_hidden_layers,
            || SelfAttention {
                query: linear(h, h),
                key: linear(h, h),
                value: linear(h, h),
                dropout: DropoutConfig::new(self.attention_probs_dropout_prob).init(),
                num_heads: self.num_attention_heads,
            },
            device,
        );
        PostNormEncoder {
            embeddings,
            encoder: LayerStack { layer },
            pooler: self.with_pooler.then(|| Pooler { dense: linear(h, h) }),
            config: self.clone(),
            weights_sha256: None,
        }
    }
}

impl<B: Backend> Backbone<B> for PostNormEncoder<B> {
    type Input = EncoderInput<B>;
    type Output = EncoderOutput<B>;

    fn forward_with<D: Delta<B>>(&self, input: EncoderInput<B>, delta: &D) -> EncoderOutput<B> {
        // Prompt slots in front of the tokens, as PEFT passes them in `inputs_embeds`.
        let (inputs, prompt) = DeltaInputs::read(delta, input.attention_mask, 0);
        // [batch, n_prompt + seq, hidden]
        let x = self.embeddings.forward(
            input.input_ids,
            input.token_type_ids,
            prompt,
            inputs.prefix_len,
        );
        // [batch, n_prefix + n_prompt + seq]
        let bias = mask_bias(inputs.key_mask());
        let layers = &self.encoder.layer;
        let x = inputs.run_layers(x, layers.len(), delta, |index, x, prefix| {
            layers[index].forward(x, &bias, prefix, index, delta)
        });
        let pooled = self.pooler.as_ref().map(|pooler| {
            let [batch, _, hidden] = x.dims();
            // [batch, 1, hidden] from the first position
            let first = x.clone().narrow(1, 0, 1);
            let dense = project(&pooler.dense, 0, LinearKind::Pooler, first, delta);
            dense.reshape([batch, hidden]).tanh()
        });
        inputs.output(x, pooled)
    }

    fn shape(&self) -> BackboneShape {
        let c = &self.config;
        let head_dim = c.hidden_size / c.num_attention_heads;
        BackboneShape::encoder(
            c.num_hidden_layers,
            c.hidden_size,
            c.num_attention_heads,
            head_dim,
            c.vocab_size,
        )
    }

    /// The six sites of every layer, then the pooler's `pooler.dense` when the model has one
    /// (PEFT's `target_modules = ["dense"]` adapts it too).
    fn linear_sites(&self) -> Vec<LinearSiteInfo> {
        let mut sites = stack_linear_sites(&self.encoder.layer, |layer| self.layer_path(layer));
        if let Some(pooler) = &self.pooler {
            let [d_input, d_output] = pooler.dense.weight.dims();
            sites.push(LinearSiteInfo {
                site: LinearSite::encoder(0, LinearKind::Pooler),
                path: "pooler.dense".to_string(),
                d_input,
                d_output,
            });
        }
        sites
    }

    fn linear_weight(&self, site: LinearSite) -> Tensor<B, 2> {
        match (site.kind, &self.pooler) {
            (LinearKind::Pooler, Some(pooler)) => pooler.dense.weight.val(),
            _ => self.encoder.layer[site.layer].linear_weight(site.kind),
        }
    }

    fn with_linear_weight(mut self, site: LinearSite, weight: Tensor<B, 2>) -> Self {
        match (site.kind, &mut self.pooler) {
            (LinearKind::Pooler, Some(pooler)) => {
                pooler.dense.weight = replace_value(pooler.dense.weight.clone(), weight);
            }
            _ => self.encoder.layer[site.layer].set_linear_weight(site.kind, weight),
        }
        self
    }

    fn word_embeddings(&self) -> Option<Tensor<B, 2>> {
        Some(self.embeddings.word_embeddings.weight.val())
    }

    fn identity(&self) -> BackboneIdentity {
        BackboneIdentity {
            weights_sha256: self.weights_sha256.clone(),
            ..BackboneIdentity::from_config(&self.config.model_type, &self.config)
        }
    }

    fn input_limits<D: Delta<B>>(&self, delta: &D) -> InputLimits {
        self.embeddings.input_limits(delta.prompt_len(), delta.prefix_len())
    }
}
