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
use pet_core::{Backbone, BackboneIdentity, BackboneShape, Delta, EncoderOutput, LinearSite};

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use pet_core::params::param_entries;

    type B = burn::backend::Flex;

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
