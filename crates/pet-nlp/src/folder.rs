//! A Hugging Face model folder (`config.json`, `model.safetensors`) loaded as a backbone, with
//! strict key checking.
//!
//! [`load_encoder`] routes a folder by `config.json`'s `model_type`: `deberta-v2` (DeBERTa-v2
//! and v3) to [`load_deberta`](crate::deberta::load_deberta), every other type to the BERT
//! family's [`load_post_norm`] (`bert`, `roberta`; the config check names what it refuses).
//!
//! The folder may hold a bare encoder (keys `embeddings.*`, `encoder.*`, as in
//! all-MiniLM-L6-v2) or a task checkpoint as transformers saves it (`bert.*` / `roberta.*` /
//! `deberta.*` plus `classifier.*`, `pooler.*`, `cls.*`, `qa_outputs.*`, `lm_head.*`). The
//! encoder's keys must all be present and used; the task layers beside them are left to the
//! heads, and are reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{TensorData, backend::Backend};
use pet_core::blocks::hf_keys::{LoadReport, load_hf_state};
use pet_core::blocks::{PostNormEncoder, PostNormEncoderConfig};
use pet_core::config_check::HeaderCheck;
use pet_core::digest::sha256_file;
use pet_core::safetensors_io::{TensorHeader, read_header, read_tensor_file};
use serde::de::DeserializeOwned;

use crate::backbone::NlpBackbone;
use crate::bert::{HfEncoderConfig, read_config};
use crate::error::{NlpError, Result};
use crate::heads::classification::from_hf_head_keys;

/// `model_type` of DeBERTa-v2 and v3 checkpoints.
pub const DEBERTA_V2: &str = "deberta-v2";

/// What a model folder holds, read and checked.
#[derive(Clone, Debug)]
pub struct EncoderFolder {
    /// The folder.
    pub dir: PathBuf,
    /// `model_type` of `config.json`.
    pub model_type: String,
    /// Prefix of the encoder's keys: empty for a bare encoder, `bert.` or `roberta.` for a task
    /// checkpoint.
    pub key_prefix: String,
    /// Every tensor of `model.safetensors`, by key.
    pub weights: BTreeMap<String, TensorData>,
    /// SHA-256 of `model.safetensors`.
    pub weights_sha256: String,
    /// Class names of a task checkpoint, by index (`config.json`'s `id2label`).
    pub id2label: BTreeMap<String, String>,
}

/// Keys that belong to no encoder and may sit in a bare encoder's file.
fn is_buffer(key: &str) -> bool {
    key.ends_with("position_ids")
}

/// Reads the JSON config at `path` as `T` ([`pet_core::config_json::read_json_config`]), a
/// value of the wrong type or range at a known field being [`NlpError::Config`] naming the file
/// and the field's path.
///
/// # Errors
/// As above; malformed JSON, a missing field or an unreadable file as pet-core reports them.
pub fn read_json_config<T: DeserializeOwned>(path: &Path) -> Result<T> {
    pet_core::config_json::read_json_config(path).map_err(|e| NlpError::at_config(path, e))
}

/// The JSON config `text` as `T`, as [`read_json_config`] reads the file `path`.
///
/// # Errors
/// As [`read_json_config`].
pub fn parse_json_config<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    pet_core::config_json::parse_json_config(path, text).map_err(|e| NlpError::at_config(path, e))
}

/// The key prefix of the encoder in a weights file: `{model}.` when some key starts with it (a
/// task checkpoint), else empty (a bare encoder).
pub fn key_prefix(header: &TensorHeader, model: &str) -> String {
    let task_prefix = format!("{model}.");
    match header.shapes.keys().any(|k| k.starts_with(&task_prefix)) {
        true => task_prefix,
        false => String::new(),
    }
}

/// `model_type` of the `config.json` at `path`.
///
/// # Errors
/// [`NlpError`] naming the file: unreadable, not JSON, or without a string `model_type`.
pub fn model_type(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| pet_core::PetError::io(path, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| pet_core::PetError::format(path, e))?;
    match value.get("model_type").and_then(serde_json::Value::as_str) {
        Some(model_type) => Ok(model_type.to_string()),
        None => Err(NlpError::Config {
            path: path.to_path_buf(),
            field: "model_type".into(),
            reason: "missing; pet reads `bert`, `roberta` and `deberta-v2` folders".into(),
        }),
    }
}

/// The names of `n` classes: `id2label` (a config's, keyed `"0"`, `"1"`, ...) when it names
/// exactly `0..n`, else transformers' defaults `LABEL_0`, `LABEL_1`, ...
pub fn label_names(id2label: &BTreeMap<String, String>, n: usize) -> Vec<String> {
    let named: Option<Vec<String>> =
        (0..n).map(|i| id2label.get(&i.to_string()).cloned()).collect();
    match named {
        Some(names) if id2label.len() == n => names,
        _ => (0..n).map(|i| format!("LABEL_{i}")).collect(),
    }
}

/// Loads the encoder of the folder `dir`, BERT family or DeBERTa-v2 by `config.json`'s
/// `model_type`.
///
/// # Errors
/// [`NlpError`] naming the file and key: a missing file, malformed JSON, an unsupported config, a
/// missing, unexpected or mis-shaped weight.
pub fn load_encoder<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(NlpBackbone<B>, EncoderFolder, LoadReport)> {
    if model_type(&dir.join("config.json"))? == DEBERTA_V2 {
        let (encoder, folder, report) = crate::deberta::load_deberta(dir, device)?;
        return Ok((encoder.into(), folder, report));
    }
    let (encoder, folder, report) = load_post_norm(dir, device)?;
    Ok((encoder.into(), folder, report))
}

/// The encoder config of the BERT-family `config.json` at `config_path` (read as `hf`), checked
/// against the header of its weights file (`file`): its values, then every tensor it implies
/// against the file's keys and shapes. Returns the config and the encoder's key prefix in the
/// file. Nothing of the config's sizes is allocated.
///
/// # Errors
/// [`NlpError::Config`] naming `config_path` and the field (and, for a size, the file's key and
/// shape); [`pet_core::PetError::MissingWeights`] for a tensor every model has.
pub fn post_norm_config(
    config_path: &Path,
    hf: &HfEncoderConfig,
    header: &TensorHeader,
    file: &str,
) -> Result<(PostNormEncoderConfig, String)> {
    let key_prefix = key_prefix(header, &hf.model_type.replace('-', "_"));
    let with_pooler = header.shapes.contains_key(&format!("{key_prefix}pooler.dense.weight"));
    let config = hf.to_encoder_config(config_path, with_pooler)?;
    config
        .check_header(&HeaderCheck::new(&header.shapes, file, &key_prefix))
        .map_err(|e| NlpError::at_config(config_path, e))?;
    Ok((config, key_prefix))
}

/// Loads the BERT-family encoder (`bert`, `roberta`, ...) of the folder `dir`.
///
/// # Errors
/// [`NlpError`] naming the file and key: a missing file, malformed JSON, an unsupported config, a
/// missing, unexpected or mis-shaped weight.
pub fn load_post_norm<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(PostNormEncoder<B>, EncoderFolder, LoadReport)> {
    let config_path = dir.join("config.json");
    let hf = read_config(&config_path)?;
    let weights_path = dir.join("model.safetensors");
    // The config is checked against the file's header before anything is allocated.
    let header = read_header(&weights_path)?;
    let file = weights_path.display().to_string();
    let (config, key_prefix) = post_norm_config(&config_path, &hf, &header, &file)?;
    let weights = read_tensor_file(&weights_path)?.tensors;
    let encoder = config.init::<B>(device);
    let prefix = key_prefix.clone();
    let ignore = move |key: &str| {
        is_buffer(key)
            || (!prefix.is_empty() && !key.starts_with(&prefix))
            || key.starts_with("cls.")
            || key.starts_with("lm_head.")
    };
    let (mut encoder, report) = load_hf_state(encoder, &weights, &file, &key_prefix, &ignore)?;
    let weights_sha256 = sha256_file(&weights_path)?;
    encoder.weights_sha256 = Some(weights_sha256.clone());
    let folder = EncoderFolder {
        dir: dir.to_path_buf(),
        model_type: hf.model_type,
        key_prefix,
        weights,
        weights_sha256,
        id2label: hf.id2label,
    };
    Ok((encoder, folder, report))
}

impl EncoderFolder {
    /// The names of `n` classes: `id2label` when it names exactly `0..n`, else transformers'
    /// defaults `LABEL_0`, `LABEL_1`, ...
    pub fn label_names(&self, n: usize) -> Vec<String> {
        label_names(&self.id2label, n)
    }

    /// `head` with the task layers of this folder loaded: every key outside the encoder's prefix
    /// (`classifier.*`, `pooler.*` as transformers' task models save them, renamed by
    /// [`from_hf_head_keys`]) must fit a parameter of `head`.
    ///
    /// # Errors
    /// [`NlpError`] naming the file and key when the folder holds no task
    /// layers (a bare encoder), or they do not fit `head`.
    pub fn load_head<B: Backend, M: burn::module::Module<B>>(&self, head: M) -> Result<M> {
        let file = self.weights_file();
        if self.key_prefix.is_empty() {
            return Err(pet_core::PetError::MissingWeights {
                file,
                keys: vec!["classifier.weight".into()],
            }
            .into());
        }
        let (weights, _) = from_hf_head_keys(self.head_weights());
        Ok(load_hf_state(head, &weights, &file, "", &|_| false)?.0)
    }

    /// The task layers of a task checkpoint (every key outside the encoder's prefix), by key;
    /// empty for a bare encoder.
    pub fn head_weights(&self) -> BTreeMap<String, TensorData> {
        if self.key_prefix.is_empty() {
            return BTreeMap::new();
        }
        self.weights
            .iter()
            .filter(|(k, _)| !k.starts_with(&self.key_prefix) && !is_buffer(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The attribute that holds the encoder in transformers' task models of this
    /// `model_type` (`bert`, `roberta`, `deberta` for `deberta-v2`): where PEFT keys its weights.
    pub fn hf_base_model(&self) -> &str {
        match self.model_type.as_str() {
            DEBERTA_V2 => "deberta",
            other => other,
        }
    }

    /// `model.safetensors` of the folder, for messages.
    pub fn weights_file(&self) -> String {
        self.dir.join("model.safetensors").display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_come_from_id2label_or_default() {
        let named: BTreeMap<String, String> =
            [("0", "ham"), ("1", "spam")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        assert_eq!(label_names(&named, 2), ["ham", "spam"]);
        assert_eq!(label_names(&named, 3), ["LABEL_0", "LABEL_1", "LABEL_2"]);
        assert_eq!(label_names(&BTreeMap::new(), 2), ["LABEL_0", "LABEL_1"]);
    }

    #[test]
    fn a_config_without_model_type_is_named() {
        let dir = std::env::temp_dir().join(format!("pet-model-type-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("config.json");
        std::fs::write(&path, "{\"hidden_size\": 8}").expect("write");
        let err = model_type(&path).expect_err("no model_type").to_string();
        assert!(err.contains("config.json") && err.contains("model_type"), "{err}");
        std::fs::write(&path, "{\"model_type\": \"deberta-v2\"}").expect("write");
        assert_eq!(model_type(&path).expect("model_type"), DEBERTA_V2);
        std::fs::remove_dir_all(&dir).ok();
    }
}
