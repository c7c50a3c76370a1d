//! pet-nlp: P-Tuning v2 and the delta family on Hugging Face text encoders.
//!
//! Backbones read a Hugging Face folder (`config.json`, `model.safetensors`) with strict key
//! checking and expose every seam of pet-core: [`bert`] (BERT and its checkpoints such as
//! all-MiniLM-L6-v2) and [`roberta`] (RoBERTa's padding-offset position ids), both
//! configurations of pet-core's [`PostNormEncoder`](pet_core::blocks::PostNormEncoder), and
//! [`deberta`] (DeBERTa-v2 / v3). [`load_encoder`] reads any of them as an [`NlpBackbone`], the
//! backbone of the task models in [`tasks`].

pub mod backbone;
pub mod batch;
pub mod bert;
pub mod data;
pub mod deberta;
pub mod error;
pub mod folder;
pub mod heads;
pub mod input;
pub mod roberta;
pub mod tasks;
pub mod tokenize;

pub use backbone::NlpBackbone;
pub use error::{NlpError, Result};
pub use folder::{EncoderFolder, load_encoder, load_post_norm};
