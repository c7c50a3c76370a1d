//! Key maps between Burn parameter paths and Hugging Face state-dict keys, and the strict loader
//! that uses one.
//!
//! A backbone names its [`KeyMap`]: how a path is renamed, and which tensors PyTorch stores
//! transposed. Transposition is read from the type of the module that holds a parameter (Burn's
//! `Linear` holds `[in, out]`, PyTorch's `nn.Linear` `[out, in]`), never guessed from names.
//! [`BertKeys`] is the table of the BERT family ([`PostNormEncoder`](super::PostNormEncoder)),
//! which DeBERTa's keys follow too:
//!
//! | Burn path segment | Hugging Face key segment |
//! |---|---|
//! | `self_attention` | `self` |
//! | `layer_norm.gamma` | `LayerNorm.weight` |
//! | `layer_norm.beta` | `LayerNorm.bias` |
//!
//! and the weights of `Linear` modules are transposed on the way in and out.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::Module;
use burn::tensor::{TensorData, backend::Backend};

use crate::error::{PetError, Result};
use crate::params::{ParamEntry, param_entries, read_params, write_params};

/// How one backbone's Burn parameter paths map to its Hugging Face state dict.
pub trait KeyMap {
    /// The Hugging Face key of the Burn parameter path `path` (without a task model's prefix).
    fn hf_key(&self, path: &str) -> String;

    /// Whether PyTorch stores the parameter `entry` transposed against Burn's layout.
    fn transposed(&self, entry: &ParamEntry) -> bool;
}

/// The BERT family's key map: the renames of the module table, linear weights transposed.
#[derive(Clone, Copy, Debug, Default)]
pub struct BertKeys;

impl KeyMap for BertKeys {
    fn hf_key(&self, path: &str) -> String {
        to_hf(path)
    }

    fn transposed(&self, entry: &ParamEntry) -> bool {
        is_linear_weight(entry)
    }
}

/// Whether `entry` is the weight of a Burn `Linear` (`[in, out]`; PyTorch holds `[out, in]`).
pub fn is_linear_weight(entry: &ParamEntry) -> bool {
    entry.module == "Linear" && entry.path.ends_with(".weight") && entry.shape.len() == 2
}

/// The Hugging Face key of the Burn parameter path `path` under BERT's renames.
pub fn to_hf(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut after_norm = false;
    for segment in path.split('.') {
        let renamed = match segment {
            "self_attention" => "self",
            "layer_norm" => "LayerNorm",
            "gamma" if after_norm => "weight",
            "beta" if after_norm => "bias",
            other => other,
        };
        after_norm = segment == "layer_norm";
        out.push(renamed);
    }
    out.join(".")
}

/// `data` (2-D) transposed.
///
/// # Errors
/// [`PetError::Format`] when `data` is not 2-D or not convertible to `f32`.
pub fn transpose(data: &TensorData) -> Result<TensorData> {
    let &[rows, cols] = data.shape.as_slice() else {
        return Err(PetError::format("tensor", format!("{:?} is not 2-D", data.shape)));
    };
    let values = data
        .clone()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| PetError::format("tensor", format!("{e:?}")))?;
    let mut out = vec![0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    Ok(TensorData::new(out, [cols, rows]))
}

/// `module`'s parameters as a Hugging Face state dict under `keys`: renamed, and transposed where
/// PyTorch's layout differs (the inverse of [`load_state`] with no key prefix).
///
/// # Errors
/// When a tensor to transpose is not 2-D `f32` data.
pub fn to_state<B: Backend, M: Module<B>>(
    module: &M,
    keys: &dyn KeyMap,
) -> Result<BTreeMap<String, TensorData>> {
    let transposed = transposed_paths::<B, M>(module, keys);
    let mut state = BTreeMap::new();
    for (path, data) in read_params::<B, M>(module, &|_| true) {
        let data = if transposed.contains(&path) { transpose(&data)? } else { data };
        state.insert(keys.hf_key(&path), data);
    }
    Ok(state)
}

/// The Burn paths of `module`'s parameters that PyTorch stores transposed under `keys`.
pub fn transposed_paths<B: Backend, M: Module<B>>(
    module: &M,
    keys: &dyn KeyMap,
) -> BTreeSet<String> {
    param_entries::<B, M>(module)
        .into_iter()
        .filter(|e| keys.transposed(e))
        .map(|e| e.path)
        .collect()
}

/// What a strict load did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Parameters loaded.
    pub loaded: usize,
    /// File keys left unused because `ignore` allowed them.
    pub ignored: Vec<String>,
}

/// `module` with every parameter loaded from the Hugging Face state dict `tensors` under BERT's
/// key map ([`BertKeys`]); see [`load_state`].
///
/// # Errors
/// As [`load_state`].
pub fn load_hf_state<B: Backend, M: Module<B>>(
    module: M,
    tensors: &BTreeMap<String, TensorData>,
    file: &str,
    key_prefix: &str,
    ignore: &dyn Fn(&str) -> bool,
) -> Result<(M, LoadReport)> {
    load_state(module, &BertKeys, tensors, file, key_prefix, ignore)
}

/// `module` with every parameter loaded from the Hugging Face state dict `tensors`.
///
/// Keys are looked up as `key_prefix + keys.hf_key(path)` (e.g. `bert.` for a task checkpoint),
/// and the tensors `keys` names transposed are transposed. Every parameter of `module` must be
/// present, and every key of `tensors` must be used unless `ignore(key)` allows it (a pooler the
/// model does not have, an MLM head, buffers).
///
/// # Errors
/// [`PetError::MissingWeights`] or [`PetError::UnexpectedWeights`] naming the keys and `file`;
/// [`PetError::ShapeMismatch`] naming `file` and the Hugging Face key, with the shapes in the
/// file's layout (the file's own shape, PyTorch's `[out, in]` for a linear weight).
pub fn load_state<B: Backend, M: Module<B>>(
    module: M,
    keys: &dyn KeyMap,
    tensors: &BTreeMap<String, TensorData>,
    file: &str,
    key_prefix: &str,
    ignore: &dyn Fn(&str) -> bool,
) -> Result<(M, LoadReport)> {
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    let mut used = Vec::new();
    for entry in param_entries::<B, M>(&module) {
        let key = format!("{key_prefix}{}", keys.hf_key(&entry.path));
        let Some(data) = tensors.get(&key) else {
            missing.push(key);
            continue;
        };
        // Shapes are compared in the file's layout (PyTorch's `[out, in]` for a transposed
        // weight), so a mismatch reports the shape the file holds.
        let transposed = keys.transposed(&entry);
        let expected: Vec<usize> = match transposed {
            true => entry.shape.iter().rev().copied().collect(),
            false => entry.shape.clone(),
        };
        if data.shape.as_slice() != expected.as_slice() {
            return Err(PetError::ShapeMismatch {
                path: format!("{file}: {key}"),
                expected,
                found: data.shape.to_vec(),
            });
        }
        let data = match transposed {
            true => transpose(data)?,
            false => data.clone(),
        };
        values.insert(entry.path, data);
        used.push(key);
    }
    if !missing.is_empty() {
        return Err(PetError::MissingWeights { file: file.to_string(), keys: missing });
    }
    let (unexpected, ignored): (Vec<String>, Vec<String>) =
        tensors.keys().filter(|k| !used.contains(k)).cloned().partition(|k| !ignore(k));
    if !unexpected.is_empty() {
        return Err(PetError::UnexpectedWeights { file: file.to_string(), keys: unexpected });
    }
    let (module, loaded) = write_params(module, &values)?;
    Ok((module, LoadReport { loaded: loaded.len(), ignored }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_paths_map_to_hugging_face_keys() {
        assert_eq!(
            to_hf("encoder.layer.3.attention.self_attention.query.weight"),
            "encoder.layer.3.attention.self.query.weight"
        );
        assert_eq!(
            to_hf("encoder.layer.0.output.layer_norm.gamma"),
            "encoder.layer.0.output.LayerNorm.weight"
        );
        assert_eq!(to_hf("embeddings.layer_norm.beta"), "embeddings.LayerNorm.bias");
        assert_eq!(to_hf("pooler.dense.bias"), "pooler.dense.bias");
    }

    #[test]
    fn a_linear_weight_of_another_rank_is_a_shape_mismatch_naming_its_key() {
        use crate::testing::{TestInner as B, TinyEncoderConfig};
        let fresh = || TinyEncoderConfig::tiny().init::<B>(&Default::default());
        let mut state = to_state::<B, _>(&fresh(), &BertKeys).expect("state");
        let key = "encoder.layer.0.attention.self.query.weight";
        assert_eq!(state[key].shape.to_vec(), vec![16, 16], "PyTorch's [out, in]");
        let (_, report) =
            load_state(fresh(), &BertKeys, &state, "m", "", &|_| false).expect("back");
        assert_eq!(report.loaded, state.len());
        state.insert(key.into(), TensorData::new(vec![0f32; 16], [16]));
        match load_state(fresh(), &BertKeys, &state, "m.safetensors", "", &|_| false) {
            Err(PetError::ShapeMismatch { path, found, .. }) => {
                assert_eq!(
                    (path.as_str(), found),
                    ("m.safetensors: encoder.layer.0.attention.self.query.weight", vec![16])
                );
            }
            other => panic!("expected a shape mismatch, got {other:?}"),
        }
        assert!(transpose(&TensorData::new(vec![0f32; 8], [2, 2, 2])).is_err());
    }

    #[test]
    fn a_mis_shaped_linear_weight_is_reported_as_the_file_holds_it() {
        use crate::testing::{TestInner as B, TinyEncoderConfig};
        let config = TinyEncoderConfig::tiny();
        let fresh = || config.init::<B>(&Default::default());
        let mut state = to_state::<B, _>(&fresh(), &BertKeys).expect("state");
        // intermediate.dense is [32, 16] in PyTorch's layout; the file holds [32, 8].
        let key = "encoder.layer.1.intermediate.dense.weight";
        assert_eq!(state[key].shape.to_vec(), vec![32, 16]);
        state.insert(key.into(), TensorData::new(vec![0f32; 32 * 8], [32, 8]));
        match load_state(fresh(), &BertKeys, &state, "m.safetensors", "", &|_| false) {
            Err(PetError::ShapeMismatch { path, expected, found }) => {
                assert_eq!(path, format!("m.safetensors: {key}"));
                assert_eq!((expected, found), (vec![32, 16], vec![32, 8]), "PyTorch's layout");
            }
            other => panic!("expected a shape mismatch, got {other:?}"),
        }
    }

    #[test]
    fn only_weights_of_linear_modules_transpose() {
        use crate::testing::{TestInner as B, TinyEncoderConfig};
        let encoder = TinyEncoderConfig::tiny().init::<B>(&Default::default());
        let transposed = transposed_paths::<B, _>(&encoder, &BertKeys);
        // Six linears per layer, two layers, and the pooler; no embedding table, bias or norm.
        assert_eq!(transposed.len(), 13, "{transposed:?}");
        assert!(transposed.contains("encoder.layer.1.intermediate.dense.weight"));
        assert!(transposed.contains("pooler.dense.weight"));
        assert!(!transposed.iter().any(|p| p.contains("embeddings")));
        // A name that looks like a linear weight is not one unless a `Linear` holds it.
        let table = ParamEntry {
            path: "head.dense.weight".into(),
            shape: vec![4, 4],
            trainable: true,
            module: "Embedding".into(),
        };
        assert!(!BertKeys.transposed(&table));
        let t =
            transpose(&TensorData::new(vec![1f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])).expect("2-D");
        assert_eq!(t.shape.to_vec(), vec![3, 2]);
        assert_eq!(t.to_vec::<f32>().expect("floats"), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
