//! The ViT encoder (transformers' `ViTModel`): embeddings, a stack of [`ViTLayer`]s, the final
//! layer norm and an optional pooler, implementing [`Backbone`] with every seam. Prompt slots
//! sit after `[CLS]` (VPT), so heads read `[CLS]` at position 0 whatever the delta.

use burn::module::Module;
use burn::nn::{DropoutConfig, Initializer};
use burn::tensor::{Tensor, backend::Backend};
use pet_core::backbone::{Backbone, BackboneIdentity, EncoderOutput};
use pet_core::blocks::DeltaInputs;
use pet_core::blocks::attention::mask_bias;
use pet_core::blocks::pooler::{Pooler, linear_sites_with_pooler, set_site_weight, site_weight};
use pet_core::delta::Delta;
use pet_core::limits::InputLimits;
use pet_core::seam::{BackboneShape, LinearSite, LinearSiteInfo};
use pet_kernels::LayerNorm;

use crate::vit::config::ViTConfig;
use crate::vit::embeddings::{PatchEmbeddings, PatchProjection, ViTEmbeddings};
use crate::vit::layer::ViTLayer;

/// The layer stack (`encoder.layer.N`).
#[derive(Module, Debug)]
pub struct ViTStack<B: Backend> {
    /// The layers.
    pub layer: Vec<ViTLayer<B>>,
}

/// A ViT encoder.
#[derive(Module, Debug)]
pub struct ViT<B: Backend> {
    /// Patches, `[CLS]`, positions.
    pub embeddings: ViTEmbeddings<B>,
    /// Layers.
    pub encoder: ViTStack<B>,
    /// The final layer norm.
    pub layernorm: LayerNorm<B>,
    /// Pooler (`tanh(dense(hidden[:, 0]))`), when the model has one.
    pub pooler: Option<Pooler<B>>,
    /// The config it was built from.
    #[module(skip)]
    pub config: ViTConfig,
    /// SHA-256 of the weights file it was loaded from, part of its identity.
    #[module(skip)]
    pub weights_sha256: Option<String>,
}

/// One batch of images.
#[derive(Clone, Debug)]
pub struct ViTInput<B: Backend> {
    /// `[batch, channels, image_size, image_size]`, preprocessed (rescaled, normalized).
    pub pixel_values: Tensor<B, 4>,
}

impl ViTConfig {
    /// Builds the encoder with random weights (`with_pooler`: `ViTModel`'s pooler).
    pub fn init<B: Backend>(&self, with_pooler: bool, device: &B::Device) -> ViT<B> {
        let h = self.hidden_size;
        let normal = Initializer::Normal { mean: 0.0, std: 0.02 };
        let embeddings = ViTEmbeddings {
            cls_token: normal.init([1, 1, h], device),
            position_embeddings: normal.init([1, self.num_patches() + 1, h], device),
            patch_embeddings: PatchEmbeddings {
                projection: PatchProjection::new(self.num_channels, h, self.patch_size, device),
            },
            dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
        };
        ViT {
            embeddings,
            encoder: ViTStack {
                layer: (0..self.num_hidden_layers).map(|_| ViTLayer::new(self, device)).collect(),
            },
            layernorm: LayerNorm::new(h, self.layer_norm_eps, device),
            pooler: with_pooler.then(|| Pooler::new(h, device)),
            config: self.clone(),
            weights_sha256: None,
        }
    }
}

impl<B: Backend> Backbone<B> for ViT<B> {
    type Input = ViTInput<B>;
    type Output = EncoderOutput<B>;

    fn forward_with<D: Delta<B>>(&self, input: ViTInput<B>, delta: &D) -> EncoderOutput<B> {
        let [batch, ..] = input.pixel_values.dims();
        let positions = self.config.num_patches() + 1;
        let attended = Tensor::ones([batch, positions], &input.pixel_values.device());
        // Prompt slots after [CLS], before the patches (VPT).
        let (inputs, prompt) = DeltaInputs::read(delta, attended, 1);
        // [batch, 1 + n_prompt + patches, hidden]
        let x = self.embeddings.forward(input.pixel_values, prompt, inputs.slots);
        let bias = mask_bias(inputs.key_mask());
        let layers = &self.encoder.layer;
        let x = inputs.run_layers(x, layers.len(), delta, |index, x, prefix| {
            layers[index].forward(x, &bias, prefix, index, delta)
        });
        let x = self.layernorm.forward(x);
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
            0,
        )
    }

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
        None
    }

    fn identity(&self) -> BackboneIdentity {
        BackboneIdentity {
            weights_sha256: self.weights_sha256.clone(),
            ..BackboneIdentity::from_config(&self.config.model_type, &self.config)
        }
    }

    /// An image has `num_patches` positions, which no delta changes (prompts take no position
    /// embedding); images carry no token ids.
    fn input_limits<D: Delta<B>>(&self, _delta: &D) -> InputLimits {
        let patches = self.config.num_patches();
        InputLimits {
            vocab_size: 0,
            type_vocab_size: None,
            max_tokens: Some(patches),
            max_tokens_reason: format!(
                "{patches} patches of image_size {} in patch_size {}",
                self.config.image_size, self.config.patch_size
            ),
        }
    }
}
