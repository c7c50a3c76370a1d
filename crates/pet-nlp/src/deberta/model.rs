//! The DeBERTa-v2 / v3 encoder (transformers' `DebertaV2Model`): embeddings, the layer stack with
//! its relative embeddings and optional convolution, implementing [`Backbone`] with the seams of
//! pet-core's `PostNormEncoder`.

use burn::module::Module;
use burn::nn::PaddingConfig1d;
use burn::nn::conv::Conv1dConfig;
use burn::nn::{DropoutConfig, Embedding, EmbeddingConfig, LinearConfig};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use pet_core::blocks::DeltaInputs;
use pet_core::blocks::EncoderInput;
use pet_core::blocks::layer::{LinearSiteLayer, PostNormLayerConfig, stack_linear_sites};
use pet_core::seam::LinearSiteInfo;
use pet_core::{
    Backbone, BackboneIdentity, BackboneShape, Delta, EncoderOutput, InputLimits, LinearSite,
    PrefixPositions,
};
use pet_kernels::LayerNorm;

use crate::deberta::attention::{
    AttentionOptions, DisentangledSelfAttention, PrefixRelativePosition, RelativePositions,
    relative_index,
};
use crate::deberta::config::DebertaV2Config;
use crate::deberta::embeddings::DebertaEmbeddings;
use crate::deberta::layer::{ConvLayer, DebertaContext, DebertaLayer};

/// The layer stack and what it shares (`encoder.*`).
#[derive(Module, Debug)]
pub struct DebertaLayerStack<B: Backend> {
    /// The layers.
    pub layer: Vec<DebertaLayer<B>>,
    /// `[2 * att_span, hidden]`, with `relative_attention`.
    pub rel_embeddings: Option<Embedding<B>>,
    /// Layer norm of the relative embeddings (`encoder.LayerNorm`), with `norm_rel_ebd`.
    pub layer_norm: Option<LayerNorm<B>>,
    /// The convolution beside layer 0, with `conv_kernel_size > 0`.
    pub conv: Option<ConvLayer<B>>,
}

/// A DeBERTa-v2 / v3 encoder.
#[derive(Module, Debug)]
pub struct DebertaV2Encoder<B: Backend> {
    /// Embeddings.
    pub embeddings: DebertaEmbeddings<B>,
    /// Layers.
    pub encoder: DebertaLayerStack<B>,
    /// The config it was built from.
    #[module(skip)]
    pub config: DebertaV2Config,
    /// How attention-prefix keys take part in the relative terms.
    #[module(skip)]
    pub prefix_relative_position: PrefixRelativePosition,
    /// SHA-256 of the weights file it was loaded from, part of its identity.
    #[module(skip)]
    pub weights_sha256: Option<String>,
}

impl DebertaV2Config {
    /// Builds the encoder with random weights. Call [`DebertaV2Config::check`] first on a
    /// config read from a file.
    ///
    /// # Panics
    /// On a config [`DebertaV2Config::check`] refuses.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DebertaV2Encoder<B> {
        if let Err(e) = self.check(std::path::Path::new("config")) {
            panic!("expected a supported DeBERTa-v2 config, got {e}");
        }
        let h = self.hidden_size;
        let norm = || LayerNorm::new(h, self.layer_norm_eps, device);
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        let dropout = || DropoutConfig::new(self.hidden_dropout_prob).init();
        let embedding = |n| EmbeddingConfig::new(n, h).init(device);
        let embeddings = DebertaEmbeddings {
            word_embeddings: embedding(self.vocab_size),
            position_embeddings: self
                .position_biased_input
                .then(|| embedding(self.max_position_embeddings)),
            token_type_embeddings: (self.type_vocab_size > 0)
                .then(|| embedding(self.type_vocab_size)),
            layer_norm: norm(),
            dropout: dropout(),
            pad_token_id: self.pad_token_id,
            prefix_positions: PrefixPositions::default(),
        };
        let separate = self.relative_attention && !self.share_att_key;
        let options = AttentionOptions {
            num_heads: self.num_attention_heads,
            relative_attention: self.relative_attention,
            c2p: self.c2p(),
            p2c: self.p2c(),
            share_att_key: self.share_att_key,
            scale_factor: self.scale_factor(),
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
            || DisentangledSelfAttention {
                query_proj: linear(h, h),
                key_proj: linear(h, h),
                value_proj: linear(h, h),
                pos_key_proj: (separate && self.c2p()).then(|| linear(h, h)),
                pos_query_proj: (separate && self.p2c()).then(|| linear(h, h)),
                dropout: DropoutConfig::new(self.attention_probs_dropout_prob).init(),
                pos_dropout: dropout(),
                options,
            },
            device,
        );
        let conv = (self.conv_kernel_size > 0).then(|| {
            let k = self.conv_kernel_size;
            ConvLayer {
                conv: Conv1dConfig::new(h, h, k)
                    .with_padding(PaddingConfig1d::Explicit((k - 1) / 2, (k - 1) / 2))
                    .with_groups(self.conv_groups)
                    .init(device),
                layer_norm: norm(),
                dropout: dropout(),
                activation: self
                    .conv_activation(std::path::Path::new("config"))
                    .unwrap_or(pet_core::blocks::Activation::Tanh),
            }
        });
        DebertaV2Encoder {
            embeddings,
            encoder: DebertaLayerStack {
                layer,
                rel_embeddings: self.relative_attention.then(|| embedding(2 * self.att_span())),
                layer_norm: (self.relative_attention && self.norm_rel_embeddings()).then(norm),
                conv,
            },
            config: self.clone(),
            prefix_relative_position: PrefixRelativePosition::default(),
            weights_sha256: None,
        }
    }
}

impl<B: Backend> DebertaV2Encoder<B> {
    /// The encoder with prefix keys placed by `policy` in the relative terms.
    pub fn with_prefix_relative_position(self, policy: PrefixRelativePosition) -> Self {
        Self { prefix_relative_position: policy, ..self }
    }

    /// The encoder with absolute positions numbered by `policy` under attention prefixes (only
    /// with `position_biased_input`; default [`PrefixPositions::Offset`]).
    pub fn with_prefix_positions(mut self, policy: PrefixPositions) -> Self {
        self.embeddings.prefix_positions = policy;
        self
    }

    /// The relative embeddings and indices of a pass over `seq` positions (prompt included)
    /// with `prefix_len` prefix keys, or `None` without relative attention.
    fn relative_positions(
        &self,
        seq: usize,
        prefix_len: usize,
        device: &B::Device,
    ) -> Option<RelativePositions<B>> {
        let table = self.encoder.rel_embeddings.as_ref()?;
        let c = &self.config;
        let mut embeddings = table.weight.val();
        if let Some(norm) = &self.encoder.layer_norm {
            embeddings = norm.forward(embeddings);
        }
        let queries: Vec<i64> = (0..seq as i64).collect();
        let (keys, zero_columns) = match self.prefix_relative_position {
            PrefixRelativePosition::ZeroBias => (queries.clone(), prefix_len),
            PrefixRelativePosition::BeforeFirstToken => {
                ((-(prefix_len as i64)..seq as i64).collect::<Vec<_>>(), 0)
            }
        };
        let index = relative_index(
            &queries,
            &keys,
            c.position_buckets,
            c.max_relative(),
            c.att_span() as i64,
        );
        let index =
            Tensor::<B, 2, Int>::from_data(TensorData::new(index, [seq, keys.len()]), device);
        Some(RelativePositions { embeddings, index, zero_columns })
    }
}

impl<B: Backend> Backbone<B> for DebertaV2Encoder<B> {
    type Input = EncoderInput<B>;
    type Output = EncoderOutput<B>;

    fn forward_with<D: Delta<B>>(&self, input: EncoderInput<B>, delta: &D) -> EncoderOutput<B> {
        let [_, seq] = input.input_ids.dims();
        let device = input.input_ids.device();
        // Prompt slots in front of the tokens, as PEFT passes them in `inputs_embeds`.
        let (inputs, prompt) = DeltaInputs::read(delta, input.attention_mask, 0);
        let total = inputs.slots.len + seq;
        // [batch, n_prompt + seq, hidden]
        let embedded = self.embeddings.forward(
            input.input_ids,
            input.token_type_ids,
            prompt,
            inputs.mask.clone(),
            inputs.prefix_len,
        );
        // [batch, 1, n_prompt + seq, n_prefix + n_prompt + seq]: a query sees a key when both
        // are real (transformers' pairwise `get_attention_mask`; padded queries see nothing and
        // average every value, as there)
        let keep: Tensor<B, 3> =
            inputs.mask.clone().unsqueeze_dim::<3>(2) * inputs.key_mask().unsqueeze_dim::<3>(1);
        let context = DebertaContext {
            masked: keep.lower_elem(0.5).unsqueeze_dim(1),
            relative: self.relative_positions(total, inputs.prefix_len, &device),
        };
        let layers = &self.encoder.layer;
        let x = inputs.run_layers(embedded.clone(), layers.len(), delta, |index, x, prefix| {
            let x = layers[index].forward(x, &context, prefix, index, delta);
            match (&self.encoder.conv, index) {
                (Some(conv), 0) => conv.forward(embedded.clone(), x, inputs.mask.clone()),
                _ => x,
            }
        });
        inputs.output(x, None)
    }

    fn shape(&self) -> BackboneShape {
        let c = &self.config;
        let (layers, heads) = (c.num_hidden_layers, c.num_attention_heads);
        BackboneShape::encoder(layers, c.hidden_size, heads, c.head_dim(), c.vocab_size)
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

    fn word_embeddings(&self) -> Option<Tensor<B, 2>> {
        Some(self.embeddings.word_embeddings.weight.val())
    }

    fn input_limits<D: Delta<B>>(&self, delta: &D) -> InputLimits {
        let trained = self.config.max_position_embeddings;
        self.embeddings.input_limits(delta.prompt_len(), delta.prefix_len(), trained)
    }

    /// Architecture `deberta-v2` and the digest of the encoder's config: the task-head fields
    /// (`id2label`, `pooler_*`, `cls_dropout`) are left out, so a bare encoder and a task
    /// checkpoint of the same encoder weights are one backbone.
    fn identity(&self) -> BackboneIdentity {
        let encoder = DebertaV2Config {
            id2label: Default::default(),
            pooler_hidden_size: None,
            pooler_hidden_act: pet_core::blocks::Activation::Gelu,
            pooler_dropout: 0.0,
            cls_dropout: None,
            ..self.config.clone()
        };
        BackboneIdentity {
            weights_sha256: self.weights_sha256.clone(),
            ..BackboneIdentity::from_config(&self.config.model_type, &encoder)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pet_core::NoDelta;

    type B = burn::backend::Flex;

    #[test]
    fn linear_sites_are_the_query_key_value_proj_and_bert_output_paths() {
        let model = DebertaV2Config::tiny().init::<B>(&Default::default());
        let sites = model.linear_sites();
        assert_eq!(sites.len(), 2 * 6);
        let paths: Vec<&str> = sites.iter().take(6).map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "encoder.layer.0.attention.self.query_proj",
                "encoder.layer.0.attention.self.key_proj",
                "encoder.layer.0.attention.self.value_proj",
                "encoder.layer.0.attention.output.dense",
                "encoder.layer.0.intermediate.dense",
                "encoder.layer.0.output.dense",
            ]
        );
        assert_eq!((sites[4].d_input, sites[4].d_output), (16, 24));
    }

    #[test]
    fn position_projections_exist_only_without_shared_keys() {
        let device = Default::default();
        let shared = DebertaV2Config::tiny().init::<B>(&device);
        let attention = &shared.encoder.layer[0].attention.self_attention;
        assert!(attention.pos_key_proj.is_none() && attention.pos_query_proj.is_none());
        let config = DebertaV2Config {
            share_att_key: false,
            pos_att_type: vec!["c2p".into()],
            ..DebertaV2Config::tiny()
        };
        let separate = config.init::<B>(&device);
        let attention = &separate.encoder.layer[0].attention.self_attention;
        assert!(attention.pos_key_proj.is_some() && attention.pos_query_proj.is_none());
        // 2 * position_buckets rows of relative embeddings.
        let table = separate.encoder.rel_embeddings.as_ref().expect("relative attention");
        assert_eq!(table.weight.dims(), [8, 16]);
    }

    #[test]
    fn the_identity_ignores_task_head_fields() {
        let device = Default::default();
        let bare = DebertaV2Config::tiny().init::<B>(&device);
        let mut task_config = DebertaV2Config::tiny();
        task_config.id2label.insert("0".into(), "neg".into());
        task_config.cls_dropout = Some(0.2);
        let task = task_config.init::<B>(&device);
        assert!(bare.identity().is_compatible(&task.identity()));
        let other = DebertaV2Config { position_buckets: 8, ..DebertaV2Config::tiny() };
        assert!(!bare.identity().is_compatible(&other.init::<B>(&device).identity()));
    }

    #[test]
    fn padded_positions_still_produce_finite_states() {
        let device = Default::default();
        let model = DebertaV2Config::tiny().init::<B>(&device);
        let input = EncoderInput::new(
            Tensor::from_data([[1, 5, 6, 0, 0]], &device),
            Tensor::from_data([[1.0, 1.0, 1.0, 0.0, 0.0]], &device),
        );
        let out = model.forward_with(input, &NoDelta);
        assert_eq!(out.hidden.dims(), [1, 5, 16]);
        let values = out.hidden.into_data().to_vec::<f32>().expect("floats");
        assert!(values.iter().all(|v| v.is_finite()));
    }
}
