//! The one rename table between Burn parameter paths of [`PostNormEncoder`](super::PostNormEncoder)
//! and Hugging Face state-dict keys, and the strict loader that uses it.
//!
//! | Burn path segment | Hugging Face key segment |
//! |---|---|
//! | `self_attention` | `self` |
//! | `layer_norm.gamma` | `LayerNorm.weight` |
//! | `layer_norm.beta` | `LayerNorm.bias` |
//!
//! Linear weights are stored `[out, in]` by PyTorch and held `[in, out]` by Burn, so every 2-D
//! tensor that is not an embedding table is transposed on the way in and out.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::{TensorData, backend::Backend};

use crate::error::{PetError, Result};
use crate::params::{param_entries, write_params};

/// The Hugging Face key of the Burn parameter path `path`.
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

/// Whether the tensor at Burn path `path` is a linear weight, stored transposed by PyTorch.
pub fn is_linear_weight(path: &str, rank: usize) -> bool {
    rank == 2
        && path.ends_with(".weight")
        && !path.trim_end_matches(".weight").ends_with("embeddings")
}

/// `data` (2-D) transposed.
pub fn transpose(data: &TensorData) -> Result<TensorData> {
    let [rows, cols] = [data.shape[0], data.shape[1]];
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

/// What a strict load did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Parameters loaded.
    pub loaded: usize,
    /// File keys left unused because `ignore` allowed them.
    pub ignored: Vec<String>,
}

/// `module` with every parameter loaded from the Hugging Face state dict `tensors`.
///
/// Keys are looked up as `key_prefix + to_hf(path)` (e.g. `bert.` for a task checkpoint).
/// Every parameter of `module` must be present, and every key of `tensors` must be used unless
/// `ignore(key)` allows it (a pooler the model does not have, an MLM head, buffers).
///
/// # Errors
/// [`PetError::MissingWeights`] or [`PetError::UnexpectedWeights`] naming the keys and `file`;
/// [`PetError::ShapeMismatch`] naming the Hugging Face key.
pub fn load_hf_state<B: Backend, M: Module<B>>(
    module: M,
    tensors: &BTreeMap<String, TensorData>,
    file: &str,
    key_prefix: &str,
    ignore: &dyn Fn(&str) -> bool,
) -> Result<(M, LoadReport)> {
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    let mut used = Vec::new();
    for entry in param_entries::<B, M>(&module) {
        let key = format!("{key_prefix}{}", to_hf(&entry.path));
        let Some(data) = tensors.get(&key) else {
            missing.push(key);
            continue;
        };
        let data = if is_linear_weight(&entry.path, data.shape.len()) {
            transpose(data)?
        } else {
            data.clone()
        };
        if data.shape.as_slice() != entry.shape.as_slice() {
            return Err(PetError::ShapeMismatch {
                path: format!("{file}: {key}"),
                expected: entry.shape,
                found: data.shape.to_vec(),
            });
        }
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
    fn only_linear_weights_transpose() {
        assert!(is_linear_weight("encoder.layer.0.intermediate.dense.weight", 2));
        assert!(!is_linear_weight("embeddings.word_embeddings.weight", 2));
        assert!(!is_linear_weight("encoder.layer.0.intermediate.dense.bias", 1));
        let t =
            transpose(&TensorData::new(vec![1f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])).expect("2-D");
        assert_eq!(t.shape.to_vec(), vec![3, 2]);
        assert_eq!(t.to_vec::<f32>().expect("floats"), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
