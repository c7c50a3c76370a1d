//! DeBERTa-v2 and v3 (He et al., 2021, "DeBERTa: Decoding-enhanced BERT with Disentangled
//! Attention"; He et al., 2023, "DeBERTaV3") as transformers' `DebertaV2Model`, which both
//! generations share. Reference: `transformers.models.deberta_v2.modeling_deberta_v2` (4.57.6).
//!
//! | file | transformers counterpart |
//! |---|---|
//! | `config.rs` | `DebertaV2Config` (`config.json` field names and defaults) |
//! | `embeddings.rs` | `DebertaV2Embeddings` |
//! | `attention.rs` | `DisentangledSelfAttention`, `make_log_bucket_position`, `build_relative_position` |
//! | `layer.rs` | `DebertaV2Attention`, `DebertaV2Layer` (BERT's output blocks from pet-core), `ConvLayer` |
//! | `model.rs` | `DebertaV2Encoder`, `DebertaV2Model` |
//! | `pooler.rs` | `ContextPooler` and the classifier of `DebertaV2ForSequenceClassification` (a configuration of pet-nlp's classification head) |
//! | `loader.rs` | `from_pretrained`, strictly |
//!
//! Supported: relative attention with `c2p` / `p2c`, plain or log-bucketed distances,
//! `share_att_key` or separate position projections, `norm_rel_ebd` `layer_norm`, the
//! convolution beside layer 0, absolute positions (`position_biased_input`), token types. Not
//! needed and not built: the enhanced mask decoder and MLM heads, `z_steps`. Refused with a
//! named field: `embedding_size` other than the hidden size (`embed_proj`), other `pos_att_type`
//! values.
//!
//! Seams are those of pet-core's `PostNormEncoder`: input prompt, per-layer prompt, attention
//! prefix, linear sites (`query_proj`, `key_proj`, `value_proj` as `Query` / `Key` / `Value`,
//! `attention.output.dense`, `intermediate.dense`, `output.dense`), sub-layer outputs and
//! parameters by path. Choices where DeBERTa has no reference behaviour:
//!
//! - attention prefixes and relative positions: [`PrefixRelativePosition`], default
//!   [`ZeroBias`](PrefixRelativePosition::ZeroBias) (P-Tuning v2's DeBERTa: prefix keys get no
//!   c2p / p2c term);
//! - absolute positions (`position_biased_input`) under prefixes: pet-core's
//!   [`PrefixPositions`](pet_core::PrefixPositions), default `Offset` (real tokens start at
//!   `n_prefix`, as P-Tuning v2's DeBERTa-v2 passes the past length to its embeddings);
//!   relative positions of real tokens always count from 0;
//! - an input prompt takes positions `0..n_prompt` (absolute and relative) as transformers'
//!   `inputs_embeds` path (PEFT's prompt tuning) gives it;
//! - padding: as transformers 4.57, padded positions' embeddings are zeroed and a padded query
//!   (which sees no key) averages every value. P-Tuning v2's fork keeps padded embeddings
//!   (all-ones embedding mask) and gives padded queries zero attention; only padded positions'
//!   outputs, and with the convolution real tokens next to padding, can differ.

mod attention;
mod config;
mod embeddings;
mod layer;
mod loader;
mod model;
mod pooler;

pub use attention::{
    AttentionOptions, DisentangledSelfAttention, PrefixRelativePosition, RelativePositions,
    make_log_bucket_position, relative_index,
};
pub use config::{DebertaV2Config, read_config};
pub use embeddings::DebertaEmbeddings;
pub use layer::{ConvLayer, DebertaContext, DebertaLayer};
pub use loader::{KEY_PREFIX, checked_key_prefix, load_deberta};
pub use model::{DebertaLayerStack, DebertaV2Encoder};
