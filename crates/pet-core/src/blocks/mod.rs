//! Seam-aware building blocks of the BERT family of encoders (post-layer-norm transformers with
//! absolute positions): embeddings, self-attention, the layer, and the whole encoder. BERT and
//! RoBERTa (pet-nlp) and the tiny reference encoder (`testing`) are configurations of
//! [`PostNormEncoder`]; parameter paths follow Hugging Face's `BertModel` state dict up to the
//! renames of [`hf_keys`].

pub mod activation;
pub mod attention;
pub mod delta_inputs;
pub mod embeddings;
pub mod encoder;
pub mod hf_keys;
pub mod layer;
pub mod pooler;

pub use activation::Activation;
pub use delta_inputs::{DeltaInputs, with_leading_ones};
pub use embeddings::{Embeddings, PositionIds};
pub use encoder::{EncoderInput, PostNormEncoder, PostNormEncoderConfig};
