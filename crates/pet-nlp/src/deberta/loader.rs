//! Strict loading of a Hugging Face DeBERTa-v2 / v3 folder (`config.json`,
//! `model.safetensors`): a bare `DebertaV2Model` (keys `embeddings.*`, `encoder.*`) or a task
//! checkpoint (`deberta.*` plus its task layers).
//!
//! Burn paths map to state-dict keys through pet-core's one rename table
//! ([`to_hf`](pet_core::blocks::hf_keys::to_hf)); DeBERTa needs no other rename:
//!
//! | Burn path | Hugging Face key |
//! |---|---|
//! | `embeddings.layer_norm.gamma` / `.beta` | `embeddings.LayerNorm.weight` / `.bias` |
//! | `encoder.layer.N.attention.self_attention.{query,key,value}_proj.*` | `encoder.layer.N.attention.self.{query,key,value}_proj.*` |
//! | `encoder.layer.N.attention.self_attention.pos_{key,query}_proj.*` | `encoder.layer.N.attention.self.pos_{key,query}_proj.*` |
//! | `encoder.layer.N.{attention.output,output}.layer_norm.gamma` / `.beta` | `... .LayerNorm.weight` / `.bias` |
//! | `encoder.layer_norm.gamma` / `.beta` (`norm_rel_ebd`) | `encoder.LayerNorm.weight` / `.bias` |
//! | `encoder.conv.layer_norm.gamma` / `.beta` | `encoder.conv.LayerNorm.weight` / `.bias` |
//! | everything else (`rel_embeddings`, `conv.conv`, `dense`, embeddings) | the same |
//!
//! Linear weights are transposed (`[out, in]` in PyTorch); embedding tables (`rel_embeddings`
//! included) and the convolution kernel (`[out, in / groups, kernel]` in both) are not.
//!
//! Allowed beside the encoder, left unused and reported: the `position_ids` buffer; in a task
//! checkpoint every key outside `deberta.` (`pooler.*`, `classifier.*`, `lm_predictions.*`,
//! `mask_predictions.*`, `cls.*`); in a bare file the MLM heads (`lm_predictions.*`, `cls.*`,
//! `mask_predictions.*`); and `embeddings.position_embeddings.weight` when the config has no
//! absolute positions (`position_biased_input: false`), which transformers also ignores.

use std::path::Path;

use burn::tensor::backend::Backend;
use pet_core::blocks::hf_keys::{LoadReport, load_hf_state};
use pet_core::config_check::HeaderCheck;
use pet_core::digest::sha256_file;
use pet_core::safetensors_io::{TensorHeader, read_header, read_tensor_file};

use crate::deberta::config::{DebertaV2Config, read_config};
use crate::deberta::model::DebertaV2Encoder;
use crate::error::{NlpError, Result};
use crate::folder::{EncoderFolder, key_prefix};

/// The key prefix of DeBERTa-v2's encoder inside transformers' task models.
pub const KEY_PREFIX: &str = "deberta.";

/// Heads of masked-language-model checkpoints, never part of the encoder.
const MLM_HEADS: [&str; 3] = ["lm_predictions.", "cls.", "mask_predictions."];

/// Whether `key` may sit in the file unused (see the module docs).
fn allowed(key: &str, key_prefix: &str, config: &DebertaV2Config) -> bool {
    let inner = key.strip_prefix(key_prefix);
    key.ends_with("position_ids")
        || inner.is_none()
        || MLM_HEADS.iter().any(|head| key.starts_with(head))
        || (!config.position_biased_input && inner == Some("embeddings.position_embeddings.weight"))
}

/// The key prefix of the encoder in the weights file `file` whose header is `header`, after
/// checking the DeBERTa-v2 config (read from `config_path` and checked) against it: every tensor
/// the config implies must be in the file with its shape. Nothing of the config's sizes is
/// allocated.
///
/// # Errors
/// [`NlpError::Config`] naming `config_path` and the field, the file's key and shape.
pub fn checked_key_prefix(
    config_path: &Path,
    config: &DebertaV2Config,
    header: &TensorHeader,
    file: &str,
) -> Result<String> {
    let key_prefix = key_prefix(header, KEY_PREFIX.trim_end_matches('.'));
    config
        .check_header(&HeaderCheck::new(&header.shapes, file, &key_prefix))
        .map_err(|e| NlpError::at_config(config_path, e))?;
    Ok(key_prefix)
}

/// Loads the DeBERTa-v2 / v3 encoder of the folder `dir`.
///
/// # Errors
/// [`NlpError`](crate::NlpError) naming the file and key or field: a missing file, malformed
/// JSON, an unsupported config, a missing, unexpected or mis-shaped weight.
pub fn load_deberta<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(DebertaV2Encoder<B>, EncoderFolder, LoadReport)> {
    let config_path = dir.join("config.json");
    let config = read_config(&config_path)?;
    let weights_path = dir.join("model.safetensors");
    // The config is checked against the file's header before anything is allocated.
    let header = read_header(&weights_path)?;
    let file = weights_path.display().to_string();
    let key_prefix = checked_key_prefix(&config_path, &config, &header, &file)?;
    let weights = read_tensor_file(&weights_path)?.tensors;
    let encoder = config.init::<B>(device);
    let (mut encoder, report) =
        load_hf_state(encoder, &weights, &file, &key_prefix, &|key: &str| {
            allowed(key, &key_prefix, &config)
        })?;
    let weights_sha256 = sha256_file(&weights_path)?;
    encoder.weights_sha256 = Some(weights_sha256.clone());
    let folder = EncoderFolder {
        dir: dir.to_path_buf(),
        model_type: config.model_type.clone(),
        key_prefix,
        weights,
        weights_sha256,
        id2label: config.id2label.clone(),
    };
    Ok((encoder, folder, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_names_buffers_heads_and_unused_positions() {
        let v3 = DebertaV2Config::tiny();
        assert!(allowed("embeddings.position_ids", "", &v3));
        assert!(allowed("lm_predictions.lm_head.bias", "", &v3));
        assert!(allowed("classifier.weight", KEY_PREFIX, &v3));
        assert!(allowed("embeddings.position_embeddings.weight", "", &v3));
        assert!(!allowed("classifier.weight", "", &v3));
        assert!(!allowed("encoder.layer.9.output.dense.weight", "", &v3));
        let v2 = DebertaV2Config { position_biased_input: true, ..v3 };
        assert!(!allowed("deberta.embeddings.position_embeddings.weight", KEY_PREFIX, &v2));
    }
}
