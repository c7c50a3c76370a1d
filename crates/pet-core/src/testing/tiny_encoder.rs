//! A tiny post-LN transformer encoder (BERT's layout without token types or pooler) that
//! exposes every seam, so that deltas, checkpoints and training are tested before any real
//! backbone exists. Its linear sites carry BERT's Hugging Face module paths, so PEFT adapters
//! made for a BERT of the same sizes map onto it.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Int, Tensor, backend::Backend};

use crate::backbone::{Backbone, BackboneIdentity, EncoderOutput};
use crate::delta::Delta;
use crate::params::replace_value;
use crate::seam::{
    AttentionPrefix, BackboneShape, LinearKind, LinearSite, LinearSiteInfo, PrefixPositions,
    SublayerKind, SublayerSite,
};

/// Sizes of the tiny encoder, with Hugging Face's field names.
#[derive(Config, Debug, PartialEq)]
pub struct TinyEncoderConfig {
    /// Vocabulary size.
    #[config(default = 32)]
    pub vocab_size: usize,
    /// Hidden size.
    #[config(default = 16)]
    pub hidden_size: usize,
    /// Layers.
    #[config(default = 2)]
    pub num_hidden_layers: usize,
    /// Heads per layer.
    #[config(default = 2)]
    pub num_attention_heads: usize,
    /// Feed-forward size.
    #[config(default = 32)]
    pub intermediate_size: usize,
    /// Absolute positions.
    #[config(default = 64)]
    pub max_position_embeddings: usize,
    /// Layer-norm epsilon.
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Dropout on hidden states.
    #[config(default = 0.0)]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[config(default = 0.0)]
    pub attention_probs_dropout_prob: f64,
    /// Position numbering of real tokens under attention prefixes.
    #[config(default = "PrefixPositions::Offset")]
    pub prefix_positions: PrefixPositions,
}

impl TinyEncoderConfig {
    /// The test preset: 2 layers, hidden 16, 2 heads, vocabulary 32.
    pub fn tiny() -> Self {
        Self::new()
    }

    /// Builds the encoder with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> TinyEncoder<B> {
        let h = self.hidden_size;
        let norm = || LayerNormConfig::new(h).with_epsilon(self.layer_norm_eps).init(device);
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        TinyEncoder {
            word_embeddings: EmbeddingConfig::new(self.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, h).init(device),
            embeddings_norm: norm(),
            layers: (0..self.num_hidden_layers)
                .map(|index| TinyLayer {
                    query: linear(h, h),
                    key: linear(h, h),
                    value: linear(h, h),
                    attention_output: linear(h, h),
                    attention_norm: norm(),
                    intermediate: linear(h, self.intermediate_size),
                    output: linear(self.intermediate_size, h),
                    output_norm: norm(),
                    index,
                    num_heads: self.num_attention_heads,
                    attention_dropout: DropoutConfig::new(self.attention_probs_dropout_prob).init(),
                })
                .collect(),
            dropout: DropoutConfig::new(self.hidden_dropout_prob).init(),
            config: self.clone(),
        }
    }
}

/// Token ids and attention mask.
#[derive(Clone, Debug)]
pub struct TinyInput<B: Backend> {
    /// `[batch, seq]`
    pub input_ids: Tensor<B, 2, Int>,
    /// `[batch, seq]`, 1.0 for real tokens and 0.0 for padding.
    pub attention_mask: Tensor<B, 2>,
}

/// One post-LN transformer layer.
#[derive(Module, Debug)]
pub struct TinyLayer<B: Backend> {
    query: Linear<B>,
    key: Linear<B>,
    value: Linear<B>,
    attention_output: Linear<B>,
    attention_norm: LayerNorm<B>,
    intermediate: Linear<B>,
    output: Linear<B>,
    output_norm: LayerNorm<B>,
    attention_dropout: Dropout,
    index: usize,
    num_heads: usize,
}

/// The tiny reference encoder.
#[derive(Module, Debug)]
pub struct TinyEncoder<B: Backend> {
    word_embeddings: Embedding<B>,
    position_embeddings: Embedding<B>,
    embeddings_norm: LayerNorm<B>,
    layers: Vec<TinyLayer<B>>,
    dropout: Dropout,
    #[module(skip)]
    config: TinyEncoderConfig,
}

const SITE_KINDS: [LinearKind; 6] = [
    LinearKind::Query,
    LinearKind::Key,
    LinearKind::Value,
    LinearKind::AttentionOutput,
    LinearKind::Intermediate,
    LinearKind::Output,
];

fn hf_path(site: LinearSite) -> String {
    let name = match site.kind {
        LinearKind::Query => "attention.self.query",
        LinearKind::Key => "attention.self.key",
        LinearKind::Value => "attention.self.value",
        LinearKind::AttentionOutput => "attention.output.dense",
        LinearKind::Intermediate => "intermediate.dense",
        LinearKind::Output => "output.dense",
    };
    format!("encoder.layer.{}.{name}", site.layer)
}

impl<B: Backend> TinyLayer<B> {
    fn linear(&self, kind: LinearKind) -> &Linear<B> {
        match kind {
            LinearKind::Query => &self.query,
            LinearKind::Key => &self.key,
            LinearKind::Value => &self.value,
            LinearKind::AttentionOutput => &self.attention_output,
            LinearKind::Intermediate => &self.intermediate,
            LinearKind::Output => &self.output,
        }
    }

    fn linear_mut(&mut self, kind: LinearKind) -> &mut Linear<B> {
        match kind {
            LinearKind::Query => &mut self.query,
            LinearKind::Key => &mut self.key,
            LinearKind::Value => &mut self.value,
            LinearKind::AttentionOutput => &mut self.attention_output,
            LinearKind::Intermediate => &mut self.intermediate,
            LinearKind::Output => &mut self.output,
        }
    }

    fn project<D: Delta<B>>(
        &self,
        kind: LinearKind,
        input: Tensor<B, 3>,
        delta: &D,
    ) -> Tensor<B, 3> {
        let output = self.linear(kind).forward(input.clone());
        delta.linear(LinearSite { layer: self.index, kind }, input, output)
    }

    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`, `mask_bias`: `[batch, 1, 1, n_prefix + seq]`
    fn forward<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        mask_bias: Tensor<B, 4>,
        prefix: Option<&AttentionPrefix<B>>,
        dropout: &Dropout,
        delta: &D,
    ) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let head_dim = hidden / self.num_heads;
        // [batch, heads, seq, head_dim]
        let heads =
            |t: Tensor<B, 3>| t.reshape([batch, seq, self.num_heads, head_dim]).swap_dims(1, 2);
        let q = heads(self.project(LinearKind::Query, x.clone(), delta));
        let mut k = heads(self.project(LinearKind::Key, x.clone(), delta));
        let mut v = heads(self.project(LinearKind::Value, x.clone(), delta));
        if let Some(prefix) = prefix {
            // [batch, heads, n_prefix + seq, head_dim]
            k = Tensor::cat(vec![prefix.key.clone(), k], 2);
            v = Tensor::cat(vec![prefix.value.clone(), v], 2);
        }
        // [batch, heads, seq, n_prefix + seq]
        let scores = q.matmul(k.swap_dims(2, 3)) / (head_dim as f64).sqrt() + mask_bias;
        let probs = self.attention_dropout.forward(softmax(scores, 3));
        // [batch, seq, hidden]
        let context = probs.matmul(v).swap_dims(1, 2).reshape([batch, seq, hidden]);
        let attended = dropout.forward(self.project(LinearKind::AttentionOutput, context, delta));
        let site = SublayerSite { layer: self.index, kind: SublayerKind::Attention };
        let attended = delta.sublayer(site, x.clone(), attended);
        let x = self.attention_norm.forward(attended + x);
        let inner = gelu(self.project(LinearKind::Intermediate, x.clone(), delta));
        let fed = dropout.forward(self.project(LinearKind::Output, inner, delta));
        let site = SublayerSite { layer: self.index, kind: SublayerKind::FeedForward };
        let fed = delta.sublayer(site, x.clone(), fed);
        self.output_norm.forward(fed + x)
    }
}

impl<B: Backend> TinyEncoder<B> {
    /// The config it was built from.
    pub fn config(&self) -> &TinyEncoderConfig {
        &self.config
    }
}

impl<B: Backend> Backbone<B> for TinyEncoder<B> {
    type Input = TinyInput<B>;
    type Output = EncoderOutput<B>;

    fn forward_with<D: Delta<B>>(&self, input: TinyInput<B>, delta: &D) -> EncoderOutput<B> {
        let [batch, seq] = input.input_ids.dims();
        let device = input.input_ids.device();
        // [batch, seq, hidden]
        let words = self.word_embeddings.forward(input.input_ids);
        let prompt = delta.input_prompt(batch);
        let prompt_len = prompt.as_ref().map_or(0, |p| p.dims()[1]);
        // [batch, n_prompt + seq, hidden]
        let embeds = match prompt {
            Some(prompt) => Tensor::cat(vec![prompt, words], 1),
            None => words,
        };
        let prefixes = delta.attention_prefixes(batch);
        let prefix_len = prefixes.as_ref().and_then(|p| p.first()).map_or(0, AttentionPrefix::len);
        let first = match self.config.prefix_positions {
            PrefixPositions::Offset => prefix_len,
            PrefixPositions::FromZero => 0,
        };
        let total = prompt_len + seq;
        // [1, n_prompt + seq]
        let positions = Tensor::<B, 1, Int>::arange(first as i64..(first + total) as i64, &device)
            .unsqueeze::<2>();
        let x = embeds + self.position_embeddings.forward(positions);
        let mut x = self.dropout.forward(self.embeddings_norm.forward(x));
        // [batch, n_prompt + seq]
        let mask = match prompt_len {
            0 => input.attention_mask,
            n => Tensor::cat(vec![Tensor::ones([batch, n], &device), input.attention_mask], 1),
        };
        // [batch, 1, 1, n_prefix + n_prompt + seq]: 0 where attended, the lowest float elsewhere.
        let key_mask = match prefix_len {
            0 => mask.clone(),
            n => Tensor::cat(vec![Tensor::ones([batch, n], &device), mask.clone()], 1),
        };
        let mask_bias = ((key_mask.neg() + 1.0) * f32::MIN as f64).unsqueeze_dims::<4>(&[1, 2]);
        for (index, layer) in self.layers.iter().enumerate() {
            if let Some(slots) = delta.layer_prompt(index, batch) {
                let rest = x.clone().narrow(1, prompt_len, seq);
                x = Tensor::cat(vec![slots, rest], 1);
            }
            let prefix = prefixes.as_ref().map(|p| &p[index]);
            x = layer.forward(x, mask_bias.clone(), prefix, &self.dropout, delta);
        }
        EncoderOutput { hidden: x, mask, prompt_len }
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
        (0..self.layers.len())
            .flat_map(|layer| SITE_KINDS.map(|kind| LinearSite { layer, kind }))
            .map(|site| {
                let [d_input, d_output] = self.linear_weight(site).dims();
                LinearSiteInfo { site, path: hf_path(site), d_input, d_output }
            })
            .collect()
    }

    fn linear_weight(&self, site: LinearSite) -> Tensor<B, 2> {
        self.layers[site.layer].linear(site.kind).weight.val()
    }

    fn with_linear_weight(mut self, site: LinearSite, weight: Tensor<B, 2>) -> Self {
        let linear = self.layers[site.layer].linear_mut(site.kind);
        linear.weight = replace_value(linear.weight.clone(), weight);
        self
    }

    fn word_embeddings(&self) -> Tensor<B, 2> {
        self.word_embeddings.weight.val()
    }

    fn layer_path(&self, layer: usize) -> String {
        format!("layers.{layer}.")
    }

    fn identity(&self) -> BackboneIdentity {
        BackboneIdentity::from_config("tiny-encoder", &self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoDelta;
    use crate::delta::prefix::PrefixTuningConfig;
    use crate::delta::prompt::PromptTuningConfig;
    use crate::testing::TestInner as B;
    use crate::testing::conformance::max_abs_diff;

    fn input(last: i64, mask_last: f32) -> TinyInput<B> {
        let device = Default::default();
        TinyInput {
            input_ids: Tensor::from_data([[2, 7, 11, last]], &device),
            attention_mask: Tensor::from_data([[1.0, 1.0, 1.0, mask_last]], &device),
        }
    }

    #[test]
    fn prefix_extends_the_attention_mask_and_padding_stays_unseen() {
        let _serial = crate::testing::serial();
        let device = Default::default();
        let encoder = TinyEncoderConfig::tiny().init::<B>(&device);
        let prefix = PrefixTuningConfig::for_backbone(encoder.shape(), 3)
            .init::<B>(&device)
            .expect("prefix");
        // Changing a padded token must not change the real positions' outputs...
        let a = encoder.forward_with(input(5, 0.0), &prefix).hidden.narrow(1, 0, 3);
        let b = encoder.forward_with(input(9, 0.0), &prefix).hidden.narrow(1, 0, 3);
        assert!(max_abs_diff(a.clone(), b) < 1e-6);
        // ...while the prefix is attended to.
        let plain = encoder.forward_with(input(5, 0.0), &NoDelta).hidden.narrow(1, 0, 3);
        assert!(max_abs_diff(a, plain) > 1e-3);
    }

    #[test]
    fn prompt_positions_come_first_and_are_reported() {
        let _serial = crate::testing::serial();
        let device = Default::default();
        let encoder = TinyEncoderConfig::tiny().init::<B>(&device);
        let prompt = PromptTuningConfig::new(2, 16)
            .init(&encoder.word_embeddings(), &device)
            .expect("prompt");
        let out = encoder.forward_with(input(5, 1.0), &prompt);
        assert_eq!(out.prompt_len, 2);
        assert_eq!(out.hidden.dims(), [1, 6, 16]);
        assert_eq!(out.mask.into_data().to_vec::<f32>().expect("floats"), vec![1.0; 6]);
    }

    #[test]
    fn linear_sites_carry_bert_module_paths() {
        let encoder = TinyEncoderConfig::tiny().init::<B>(&Default::default());
        let sites = encoder.linear_sites();
        assert_eq!(sites.len(), 12);
        assert_eq!(sites[0].path, "encoder.layer.0.attention.self.query");
        assert_eq!(sites[4].path, "encoder.layer.0.intermediate.dense");
        assert_eq!((sites[4].d_input, sites[4].d_output), (16, 32));
        assert!(sites[5].matches_target("output.dense") && !sites[5].matches_target("dense.x"));
    }
}
