//! BERT (Devlin et al., 2019) as Hugging Face's `BertModel`: absolute position ids, token
//! types, pooler. Reference: `transformers.models.bert.modeling_bert` (4.57.6).
//!
//! The network is pet-core's [`PostNormEncoder`](pet_core::blocks::PostNormEncoder); this module
//! reads `config.json` into its config.

mod config;

pub use config::{HfEncoderConfig, read_config};
