//! RoBERTa (Liu et al., 2019) as Hugging Face's `RobertaModel`: BERT's network with position ids
//! that count from `pad_token_id + 1` and give padding tokens `pad_token_id`
//! (`create_position_ids_from_input_ids`), offset by the prefix length under attention
//! prefixes; with an input prompt (the `inputs_embeds` path) positions count from
//! `pad_token_id + 1` over the whole sequence, padding included, as transformers does.
//! Reference: `transformers.models.roberta.modeling_roberta` (4.57.6).
//!
//! [`bert::read_config`](crate::bert::read_config) maps `model_type: roberta` to
//! [`PositionIds::PaddingOffset`](pet_core::blocks::PositionIds::PaddingOffset); the weights load
//! with [`load_encoder`](crate::load_encoder) under the `roberta.` key prefix when they come from
//! a task checkpoint.

/// The key prefix of RoBERTa's encoder inside transformers' task models.
pub const KEY_PREFIX: &str = "roberta.";
