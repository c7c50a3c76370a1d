//! `config.json` of BERT-family checkpoints.

use std::path::Path;

use pet_core::blocks::{Activation, PositionIds, PostNormEncoderConfig};
use serde::Deserialize;

use crate::error::{NlpError, Result};

fn absolute() -> String {
    "absolute".to_string()
}

fn eps() -> f64 {
    1e-12
}

/// The fields of a Hugging Face BERT or RoBERTa `config.json` that shape the network.
#[derive(Clone, Debug, Deserialize)]
pub struct HfEncoderConfig {
    /// `bert`, `roberta`, ...
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Heads.
    pub num_attention_heads: usize,
    /// Feed-forward size.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    pub hidden_act: Activation,
    /// Hidden dropout.
    pub hidden_dropout_prob: f64,
    /// Attention dropout.
    pub attention_probs_dropout_prob: f64,
    /// Absolute positions.
    pub max_position_embeddings: usize,
    /// Token types.
    pub type_vocab_size: usize,
    /// Layer-norm epsilon.
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    /// Only `absolute` is supported.
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
    /// Decoders are not encoders.
    #[serde(default)]
    pub is_decoder: bool,
    /// Class names of a task checkpoint, by index (`"0"`, `"1"`, ...).
    #[serde(default)]
    pub id2label: std::collections::BTreeMap<String, String>,
}

impl HfEncoderConfig {
    /// pet-core's config of this network; `with_pooler` says whether the weights hold a pooler.
    ///
    /// # Errors
    /// [`NlpError::Config`] naming `path` and the field for a model type or option pet does not
    /// implement, or a value no encoder can use
    /// ([`PostNormEncoderConfig::check`]: sizes of 0, dropout outside `[0, 1)`, ...).
    pub fn to_encoder_config(
        &self,
        path: &Path,
        with_pooler: bool,
    ) -> Result<PostNormEncoderConfig> {
        let refuse = |field: &str, reason: String| NlpError::Config {
            path: path.to_path_buf(),
            field: field.to_string(),
            reason,
        };
        if self.position_embedding_type != "absolute" {
            return Err(refuse(
                "position_embedding_type",
                format!("`{}` is not supported; only `absolute`", self.position_embedding_type),
            ));
        }
        if self.is_decoder {
            return Err(refuse("is_decoder", "decoders are not supported".into()));
        }
        let position_ids = match self.model_type.as_str() {
            "bert" => PositionIds::Absolute,
            "roberta" | "xlm-roberta" | "camembert" => {
                PositionIds::PaddingOffset { padding_idx: self.pad_token_id.unwrap_or(1) }
            }
            other => {
                return Err(refuse(
                    "model_type",
                    format!("`{other}` is not a BERT or RoBERTa checkpoint"),
                ));
            }
        };
        let config = PostNormEncoderConfig::new(
            self.model_type.clone(),
            self.vocab_size,
            self.hidden_size,
            self.num_hidden_layers,
            self.num_attention_heads,
            self.intermediate_size,
        )
        .with_hidden_act(self.hidden_act)
        .with_hidden_dropout_prob(self.hidden_dropout_prob)
        .with_attention_probs_dropout_prob(self.attention_probs_dropout_prob)
        .with_max_position_embeddings(self.max_position_embeddings)
        .with_type_vocab_size(self.type_vocab_size)
        .with_layer_norm_eps(self.layer_norm_eps)
        .with_position_ids(position_ids)
        .with_with_pooler(with_pooler)
        .with_pad_token_id(self.pad_token_id);
        config.check().map_err(|e| NlpError::at_config(path, e))?;
        Ok(config)
    }
}

/// Reads `config.json`.
///
/// # Errors
/// [`NlpError::Core`] with an I/O or format error naming the file and the JSON position;
/// [`NlpError::Config`] naming the field of a value of the wrong type (`"hidden_size": -1`).
pub fn read_config(path: &Path) -> Result<HfEncoderConfig> {
    crate::folder::read_json_config(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> HfEncoderConfig {
        let json = format!(
            r#"{{"model_type": "bert", "vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": 16, "type_vocab_size": 2 {extra}}}"#
        );
        serde_json::from_str(&json).expect("valid config")
    }

    #[test]
    fn roberta_numbers_positions_after_the_padding_id() {
        let c = config(r#", "pad_token_id": 1"#);
        let c = HfEncoderConfig { model_type: "roberta".into(), ..c };
        let encoder = c.to_encoder_config(Path::new("config.json"), true).expect("roberta");
        assert_eq!(encoder.position_ids, PositionIds::PaddingOffset { padding_idx: 1 });
    }

    #[test]
    fn unsupported_options_are_named() {
        let c = config(r#", "position_embedding_type": "relative_key""#);
        let err = c
            .to_encoder_config(Path::new("m/config.json"), true)
            .expect_err("relative")
            .to_string();
        assert!(err.contains("m/config.json") && err.contains("position_embedding_type"), "{err}");
        let c = HfEncoderConfig { model_type: "gpt2".into(), ..config("") };
        let err =
            c.to_encoder_config(Path::new("config.json"), true).expect_err("gpt2").to_string();
        assert!(err.contains("model_type") && err.contains("gpt2"), "{err}");
    }
}
