//! A Hugging Face ViT folder (`config.json`, `model.safetensors`) loaded strictly: the config
//! checked against the weights file's header before anything is allocated, then every
//! parameter from the file and every key of the file used (a `ViTForImageClassification`
//! checkpoint's `vit.` prefix and `classifier.*` head are recognized).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::TensorData;
use burn::tensor::backend::Backend;
use pet_core::blocks::hf_keys::{LoadReport, load_state};
use pet_core::config_check::HeaderCheck;
use pet_core::digest::sha256_file;
use pet_core::safetensors_io::{read_header, read_tensor_file};

use crate::error::{Result, VisionError};
use crate::vit::config::{ViTConfig, read_config};
use crate::vit::keys::ViTKeys;
use crate::vit::model::ViT;

/// What a loaded folder holds beside the encoder.
#[derive(Clone, Debug)]
pub struct ViTFolder {
    /// The folder.
    pub dir: PathBuf,
    /// Prefix of the encoder's keys: empty for a `ViTModel`, `vit.` for a task checkpoint.
    pub key_prefix: String,
    /// Every tensor of `model.safetensors`, by key (the head's among them).
    pub weights: BTreeMap<String, TensorData>,
    /// SHA-256 of `model.safetensors`.
    pub weights_sha256: String,
}

/// Loads the ViT encoder of the folder `dir`.
///
/// # Errors
/// [`VisionError`] naming the file and key: a missing file, malformed JSON, an unsupported
/// config, a missing, unexpected or mis-shaped weight.
pub fn load_vit<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(ViT<B>, ViTFolder, LoadReport)> {
    let config_path = dir.join("config.json");
    let config: ViTConfig = read_config(&config_path)?;
    let weights_path = dir.join("model.safetensors");
    let header = read_header(&weights_path)?;
    let file = weights_path.display().to_string();
    let key_prefix =
        if header.shapes.contains_key("vit.embeddings.cls_token") { "vit." } else { "" };
    let with_pooler = header.shapes.contains_key(&format!("{key_prefix}pooler.dense.weight"));
    config
        .check_header(&HeaderCheck::new(&header.shapes, &file, key_prefix), with_pooler)
        .map_err(|e| VisionError::at_config(&config_path, e))?;
    let weights = read_tensor_file(&weights_path)?.tensors;
    let encoder = config.init::<B>(with_pooler, device);
    let prefix = key_prefix.to_string();
    // A task checkpoint's head belongs to the task, not to the encoder.
    let ignore = move |key: &str| !prefix.is_empty() && !key.starts_with(&prefix);
    let (mut encoder, report) =
        load_state(encoder, &ViTKeys, &weights, &file, key_prefix, &ignore)?;
    let weights_sha256 = sha256_file(&weights_path)?;
    encoder.weights_sha256 = Some(weights_sha256.clone());
    let folder = ViTFolder {
        dir: dir.to_path_buf(),
        key_prefix: key_prefix.to_string(),
        weights,
        weights_sha256,
    };
    Ok((encoder, folder, report))
}
