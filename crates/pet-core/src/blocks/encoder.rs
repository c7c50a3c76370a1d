//! The post-layer-norm encoder (Hugging Face's `BertModel`): embeddings, a stack of
//! [`PostNormLayer`]s and an optional pooler, implementing [`Backbone`] with every seam.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{DropoutConfig, EmbeddingConfig, LinearConfig};
use burn::tensor::{Int, Tensor, backend::Backend};
use pet_kernels::LayerNorm;

use crate::backbone::{Backbone, BackboneIdentity, EncoderOutput};
use crate::blocks::activation::Activation;
use crate::blocks::attention::{SelfAttention, mask_bias};
use crate::blocks::delta_inputs::DeltaInputs;
use crate::blocks::embeddings::{Embeddings, PositionIds};
use crate::blocks::layer::{PostNormLayer, PostNormLayerConfig};
pub use crate::blocks::pooler::Pooler;
use crate::blocks::pooler::{linear_sites_with_pooler, set_site_weight, site_weight};
use crate::config_check::{self, HeaderCheck};
use crate::delta::Delta;
use crate::error::Result;
use crate::limits::InputLimits;
use crate::seam::{BackboneShape, LinearSite, LinearSiteInfo, PrefixPositions};

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
    /// Refuses values no encoder can be built or run with, naming the field: a size of zero
    /// (`type_vocab_size` may be 0: no token types), heads that do not divide `hidden_size`,
    /// dropout outside `[0, 1)`, a `layer_norm_eps` that is not finite and above 0, a
    /// `pad_token_id` outside the vocabulary, RoBERTa's padding position outside the position
    /// table.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`](crate::PetError::InvalidConfig) naming the field.
    pub fn check(&self) -> Result<()> {
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            config_check::positive(field, value)?;
        }
        config_check::divides(
            "num_attention_heads",
            self.num_attention_heads,
            "hidden_size",
            self.hidden_size,
        )?;
        config_check::dropout("hidden_dropout_prob", self.hidden_dropout_prob)?;
        config_check::dropout("attention_probs_dropout_prob", self.attention_probs_dropout_prob)?;
        config_check::positive_finite("layer_norm_eps", self.layer_norm_eps)?;
        if let Some(pad) = self.pad_token_id {
            config_check::below("pad_token_id", pad, "vocab_size", self.vocab_size)?;
        }
        if let PositionIds::PaddingOffset { padding_idx } = self.position_ids {
            // Real tokens take positions from padding_idx + 1.
            config_check::below(
                "pad_token_id",
                padding_idx.saturating_add(1),
                "max_position_embeddings",
                self.max_position_embeddings,
            )?;
        }
        Ok(())
    }

    /// Checks the sizes against a weights file's header before anything is allocated: every
    /// tensor [`PostNormEncoderConfig::init`] would build (the pooler when `with_pooler`) must be
    /// in the file with the shape the config gives it, the first layer the file lacks ending
    /// the check.
    ///
    /// # Errors
    /// As [`HeaderCheck::tensor`]: [`PetError::InvalidConfig`](crate::PetError::InvalidConfig)
    /// naming the field (`hidden_size`, `vocab_size`, `num_hidden_layers`, ...) and the file's
    /// key and shape.
    pub fn check_header(&self, check: &HeaderCheck<'_>) -> Result<()> {
        let h = (self.hidden_size, "hidden_size");
        let table = |key: &str, origin: &str, rows: (usize, &str)| {
            check.tensor(&format!("embeddings.{key}.weight"), origin, &[rows, h])
        };
        table("word_embeddings", "", (self.vocab_size, "vocab_size"))?;
        table(
            "position_embeddings",
            "",
            (self.max_position_embeddings, "max_position_embeddings"),
        )?;
        if self.type_vocab_size > 0 {
            table(
                "token_type_embeddings",
                "type_vocab_size",
                (self.type_vocab_size, "type_vocab_size"),
            )?;
        }
        check.norm("embeddings.LayerNorm", "", h)?;
        let layer = PostNormLayerConfig::new(
            self.hidden_size,
            self.intermediate_size,
            self.hidden_act,
            self.layer_norm_eps,
            self.hidden_dropout_prob,
        );
        let origin = "num_hidden_layers";
        for index in 0..self.num_hidden_layers {
            let base = format!("encoder.layer.{index}");
            for name in ["query", "key", "value"] {
                check.linear(&format!("{base}.attention.self.{name}"), origin, h, h)?;
            }
            layer.check_header(check, &base, origin)?;
        }
        if self.with_pooler {
            check.linear("pooler.dense", "", h, h)?;
        }
        Ok(())
    }

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
            pooler: self.with_pooler.then(|| Pooler::new(h, device)),
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
        let pooled = self.pooler.as_ref().map(|pooler| pooler.forward(x.clone(), delta));
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
        let layers = &self.encoder.layer;
        linear_sites_with_pooler(layers, |layer| self.layer_path(layer), self.pooler.as_ref())
    }

    fn linear_weight(&self, site: LinearSite) -> Tensor<B, 2> {
        site_weight(&self.encoder.layer, self.pooler.as_ref(), site)
    }

    fn with_linear_weight(mut self, site: LinearSite, weight: Tensor<B, 2>) -> Self {
        set_site_weight(&mut self.encoder.layer, self.pooler.as_mut(), site, weight);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::hf_keys::{BertKeys, to_state};
    use crate::testing::TestInner as B;

    fn field_of(result: Result<()>) -> String {
        crate::testing::invalid_config(result).0
    }

    #[test]
    fn the_header_check_lists_exactly_the_tensors_init_builds() {
        let tiny = PostNormEncoderConfig::tiny();
        for config in [
            tiny.clone(),
            tiny.clone().with_with_pooler(false).with_type_vocab_size(0),
            tiny.clone()
                .with_type_vocab_size(2)
                .with_position_ids(PositionIds::PaddingOffset { padding_idx: 1 }),
        ] {
            let encoder = config.init::<B>(&Default::default());
            let state = to_state::<B, _>(&encoder, &BertKeys).expect("state");
            let shapes = state.iter().map(|(k, v)| (k.clone(), v.shape.to_vec())).collect();
            let check = HeaderCheck::new(&shapes, "m.safetensors", "");
            config.check_header(&check).expect("its own file fits");
            let mut checked = check.checked();
            checked.sort();
            assert_eq!(checked, state.keys().cloned().collect::<Vec<_>>());
        }
    }

    #[test]
    fn sizes_the_file_does_not_hold_name_the_field() {
        let tiny = PostNormEncoderConfig::tiny();
        let encoder = tiny.init::<B>(&Default::default());
        let state = to_state::<B, _>(&encoder, &BertKeys).expect("state");
        let shapes = state.iter().map(|(k, v)| (k.clone(), v.shape.to_vec())).collect();
        let check = HeaderCheck::new(&shapes, "m.safetensors", "");
        let huge = |c: PostNormEncoderConfig| field_of(c.check_header(&check));
        assert_eq!(
            huge(PostNormEncoderConfig { hidden_size: 100_000, ..tiny.clone() }),
            "hidden_size"
        );
        assert_eq!(
            huge(PostNormEncoderConfig { vocab_size: 2_000_000_000, ..tiny.clone() }),
            "vocab_size"
        );
        assert_eq!(
            huge(PostNormEncoderConfig { num_hidden_layers: 1000, ..tiny.clone() }),
            "num_hidden_layers"
        );
        assert_eq!(
            huge(PostNormEncoderConfig { intermediate_size: 1 << 40, ..tiny.clone() }),
            "intermediate_size"
        );
        assert_eq!(
            huge(tiny.clone().with_max_position_embeddings(1 << 30)),
            "max_position_embeddings"
        );
        assert_eq!(huge(tiny.clone().with_type_vocab_size(3)), "type_vocab_size");
    }

    #[test]
    fn values_no_encoder_can_use_name_the_field() {
        let tiny = PostNormEncoderConfig::tiny();
        assert!(tiny.check().is_ok());
        let bad = |c: PostNormEncoderConfig| field_of(c.check());
        assert_eq!(bad(PostNormEncoderConfig { hidden_size: 0, ..tiny.clone() }), "hidden_size");
        assert_eq!(bad(PostNormEncoderConfig { vocab_size: 0, ..tiny.clone() }), "vocab_size");
        assert_eq!(
            bad(PostNormEncoderConfig { num_hidden_layers: 0, ..tiny.clone() }),
            "num_hidden_layers"
        );
        assert_eq!(
            bad(PostNormEncoderConfig { intermediate_size: 0, ..tiny.clone() }),
            "intermediate_size"
        );
        assert_eq!(
            bad(PostNormEncoderConfig { num_attention_heads: 3, ..tiny.clone() }),
            "num_attention_heads"
        );
        assert_eq!(
            bad(PostNormEncoderConfig { num_attention_heads: 0, ..tiny.clone() }),
            "num_attention_heads"
        );
        assert_eq!(bad(tiny.clone().with_hidden_dropout_prob(1.0)), "hidden_dropout_prob");
        assert_eq!(
            bad(tiny.clone().with_attention_probs_dropout_prob(-0.5)),
            "attention_probs_dropout_prob"
        );
        assert_eq!(bad(tiny.clone().with_layer_norm_eps(0.0)), "layer_norm_eps");
        assert_eq!(bad(tiny.clone().with_layer_norm_eps(f64::NAN)), "layer_norm_eps");
        assert_eq!(bad(tiny.clone().with_pad_token_id(Some(32))), "pad_token_id");
        let roberta = tiny.with_position_ids(PositionIds::PaddingOffset { padding_idx: 63 });
        assert_eq!(bad(roberta), "pad_token_id");
    }
}
