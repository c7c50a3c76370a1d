//! [`NlpBackbone`]: the text encoders pet-nlp reads from a Hugging Face folder, as one type that
//! the task models, the trainer, checkpoints and the command line use.
//!
//! It is an enum module: BERT and RoBERTa are pet-core's
//! [`PostNormEncoder`], DeBERTa-v2 / v3 is
//! [`DebertaV2Encoder`]. Parameter paths are those of the wrapped encoder (pet-core's paths treat
//! enum variants as transparent, `pet_core::params`), so a task model's keys stay `backbone.*`,
//! `delta.*`, `head.*` whichever encoder it holds, and BERT checkpoints made before this type
//! existed still load. [`Backbone`] is implemented by delegation.

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use pet_core::blocks::{EncoderInput, PositionIds, PostNormEncoder};
use pet_core::seam::LinearSiteInfo;
use pet_core::{
    Backbone, BackboneIdentity, BackboneShape, Delta, EncoderOutput, InputLimits, LinearSite,
};

use crate::deberta::DebertaV2Encoder;
use crate::heads::ClassificationHeadConfig;

/// A text encoder: BERT / RoBERTa or DeBERTa-v2 / v3.
#[allow(
    clippy::large_enum_variant,
    reason = "a task model holds one backbone, moved rarely; Burn's Module derive takes the encoders unboxed"
)]
#[derive(Module, Debug)]
pub enum NlpBackbone<B: Backend> {
    /// BERT, RoBERTa and their checkpoints.
    PostNorm(PostNormEncoder<B>),
    /// DeBERTa-v2 and v3.
    Deberta(DebertaV2Encoder<B>),
}

/// Runs `$body` with `$m` bound to the wrapped encoder.
macro_rules! each {
    ($value:expr, $m:ident => $body:expr) => {
        match $value {
            NlpBackbone::PostNorm($m) => $body,
            NlpBackbone::Deberta($m) => $body,
        }
    };
}

impl<B: Backend> From<PostNormEncoder<B>> for NlpBackbone<B> {
    fn from(encoder: PostNormEncoder<B>) -> Self {
        Self::PostNorm(encoder)
    }
}

impl<B: Backend> From<DebertaV2Encoder<B>> for NlpBackbone<B> {
    fn from(encoder: DebertaV2Encoder<B>) -> Self {
        Self::Deberta(encoder)
    }
}

impl<B: Backend> NlpBackbone<B> {
    /// The classification head this encoder's task models use, for `num_labels` classes.
    ///
    /// - BERT / RoBERTa: P-Tuning v2's head (pooler output, dropout, linear); with
    ///   `roberta_dense`, transformers' `RobertaClassificationHead` (tanh dense layer on the
    ///   first position), to read RoBERTa task weights.
    /// - DeBERTa: transformers' `ContextPooler` + classifier (`DebertaV2ForSequenceClassification`,
    ///   also P-Tuning v2's DeBERTa head): dropout `pooler_dropout`, `pooler.dense`,
    ///   `pooler_hidden_act`, dropout `cls_dropout` (else `hidden_dropout_prob`), `classifier`;
    ///   `roberta_dense` plays no part.
    pub fn classification_head(
        &self,
        num_labels: usize,
        roberta_dense: bool,
    ) -> ClassificationHeadConfig {
        match self {
            Self::PostNorm(encoder) => {
                let config = ClassificationHeadConfig::new(encoder.config.hidden_size, num_labels);
                match roberta_dense {
                    true => config.with_roberta_dense(),
                    false => config,
                }
            }
            Self::Deberta(encoder) => encoder.config.classification_head(num_labels),
        }
    }

    /// How many token positions an input may use: the absolute position table less RoBERTa's
    /// padding offset; for DeBERTa, `max_position_embeddings` (its relative attention has no
    /// hard limit, but the checkpoints were trained up to it).
    pub fn max_positions(&self) -> usize {
        match self {
            Self::PostNorm(encoder) => {
                let config = &encoder.config;
                let offset = match config.position_ids {
                    PositionIds::PaddingOffset { padding_idx } => padding_idx + 1,
                    _ => 0,
                };
                config.max_position_embeddings.saturating_sub(offset)
            }
            Self::Deberta(encoder) => encoder.config.max_position_embeddings,
        }
    }
}

impl<B: Backend> Backbone<B> for NlpBackbone<B> {
    type Input = EncoderInput<B>;
    type Output = EncoderOutput<B>;

    fn forward_with<D: Delta<B>>(&self, input: EncoderInput<B>, delta: &D) -> EncoderOutput<B> {
        each!(self, m => m.forward_with(input, delta))
    }

    fn shape(&self) -> BackboneShape {
        each!(self, m => m.shape())
    }

    fn linear_sites(&self) -> Vec<LinearSiteInfo> {
        each!(self, m => m.linear_sites())
    }

    fn linear_weight(&self, site: LinearSite) -> Tensor<B, 2> {
        each!(self, m => m.linear_weight(site))
    }

    fn with_linear_weight(self, site: LinearSite, weight: Tensor<B, 2>) -> Self {
        each!(self, m => m.with_linear_weight(site, weight).into())
    }

    fn word_embeddings(&self) -> Option<Tensor<B, 2>> {
        each!(self, m => m.word_embeddings())
    }

    fn layer_path(&self, layer: usize) -> String {
        each!(self, m => m.layer_path(layer))
    }

    fn identity(&self) -> BackboneIdentity {
        each!(self, m => m.identity())
    }

    fn input_limits<D: Delta<B>>(&self, delta: &D) -> InputLimits {
        each!(self, m => m.input_limits(delta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pet_core::params::param_entries;

    type B = burn::backend::Flex;

    fn spec(json: &str) -> pet_core::delta::set::DeltaSpec {
        serde_json::from_str(json).expect("spec")
    }

    /// Runs `backbone` with `delta` on one row of `seq` tokens (ids 5, types 1 where the
    /// model has two types); panics where a table is indexed past its end.
    fn run<D: Delta<B>>(backbone: &NlpBackbone<B>, delta: &D, seq: usize) {
        use burn::tensor::Int;
        let device = Default::default();
        let ids = Tensor::<B, 2, Int>::full([1, seq], 5, &device);
        let mut input = EncoderInput::new(ids.clone(), Tensor::ones([1, seq], &device));
        let types = backbone.input_limits(delta).type_vocab_size;
        input.token_type_ids = types.map(|n| ids.ones_like() * (n as i64 - 1));
        backbone.forward_with(input, delta);
    }

    #[test]
    fn deberta_reports_its_tables_and_the_positions_its_delta_leaves() {
        let device = Default::default();
        // DeBERTa-v3 (no absolute positions): the trained range less prompt positions.
        let v3 = NlpBackbone::from(crate::deberta::DebertaV2Config::tiny().init::<B>(&device));
        let none = v3.input_limits(&pet_core::NoDelta);
        assert_eq!((none.vocab_size, none.type_vocab_size, none.max_tokens), (40, None, Some(32)));
        assert!(none.max_tokens_reason.contains("without position_biased_input"), "{none:?}");
        let prompt =
            spec(r#"{"prompt": {"num_virtual_tokens": 4}}"#).build(&v3, &device).expect("prompt");
        assert_eq!(v3.input_limits(&prompt).max_tokens, Some(28));
        let prefix =
            spec(r#"{"prefix": {"num_virtual_tokens": 3}}"#).build(&v3, &device).expect("prefix");
        assert_eq!(v3.input_limits(&prefix).max_tokens, Some(32), "prefix keys take no position");
        // DeBERTa-v2 with absolute positions and token types: the table less prompt and prefix.
        let config = crate::deberta::DebertaV2Config {
            position_biased_input: true,
            type_vocab_size: 2,
            ..crate::deberta::DebertaV2Config::tiny()
        };
        let v2 = NlpBackbone::from(config.init::<B>(&device));
        assert_eq!(v2.input_limits(&pet_core::NoDelta).type_vocab_size, Some(2));
        for json in
            [r#"{"prompt": {"num_virtual_tokens": 4}}"#, r#"{"prefix": {"num_virtual_tokens": 3}}"#]
        {
            let delta = spec(json).build(&v2, &device).expect("delta");
            let limits = v2.input_limits(&delta);
            let max = limits.max_tokens.expect("a table");
            assert_eq!(max, 32 - delta.prompt_len() - delta.prefix_len(), "{json}");
            run(&v2, &delta, max);
        }
    }

    #[test]
    fn bert_and_roberta_report_what_their_embeddings_take() {
        let device = Default::default();
        let config = |position_ids| {
            pet_core::blocks::PostNormEncoderConfig::new("bert".into(), 40, 16, 2, 4, 24)
                .with_max_position_embeddings(24)
                .with_type_vocab_size(2)
                .with_position_ids(position_ids)
        };
        let roberta = PositionIds::PaddingOffset { padding_idx: 1 };
        for (position_ids, offset) in [(PositionIds::Absolute, 0), (roberta, 2)] {
            let backbone = NlpBackbone::from(config(position_ids).init::<B>(&device));
            assert_eq!(backbone.max_positions(), 24 - offset);
            for json in [
                "{}",
                r#"{"prompt": {"num_virtual_tokens": 4}}"#,
                r#"{"prefix": {"num_virtual_tokens": 3}}"#,
            ] {
                let delta = spec(json).build(&backbone, &device).expect("delta");
                let limits = backbone.input_limits(&delta);
                let max = 24 - offset - delta.prompt_len() - delta.prefix_len();
                assert_eq!(limits.max_tokens, Some(max), "{position_ids:?} {json}");
                assert_eq!((limits.vocab_size, limits.type_vocab_size), (40, Some(2)));
                run(&backbone, &delta, max);
            }
        }
    }

    #[test]
    fn wrapping_keeps_the_encoders_parameter_paths() {
        let device = Default::default();
        let deberta = crate::deberta::DebertaV2Config::tiny().init::<B>(&device);
        let alone: Vec<String> =
            param_entries::<B, _>(&deberta).into_iter().map(|e| e.path).collect();
        let wrapped: Vec<String> = param_entries::<B, _>(&NlpBackbone::from(deberta))
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(wrapped, alone);
        assert!(
            wrapped
                .iter()
                .any(|p| p == "encoder.layer.0.attention.self_attention.query_proj.weight")
        );
    }
}
