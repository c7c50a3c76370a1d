//! ViT's `config.json` (transformers' `ViTConfig`, 4.57.6), with its defaults, checked before
//! anything is allocated.

use std::path::Path;

use pet_core::blocks::Activation;
use pet_core::config_check::{self, HeaderCheck};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VisionError};

/// Sizes and options, with Hugging Face's field names and defaults: what builds the network
/// and, serialized, its identity (a classifier's `id2label` belongs to the task, not here).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViTConfig {
    /// `vit`.
    #[serde(default = "vit")]
    pub model_type: String,
    /// Hidden size.
    #[serde(default = "default_hidden")]
    pub hidden_size: usize,
    /// Layers.
    #[serde(default = "default_layers")]
    pub num_hidden_layers: usize,
    /// Heads per layer.
    #[serde(default = "default_layers")]
    pub num_attention_heads: usize,
    /// Feed-forward size.
    #[serde(default = "default_intermediate")]
    pub intermediate_size: usize,
    /// Feed-forward activation.
    #[serde(default = "default_act")]
    pub hidden_act: Activation,
    /// Dropout on hidden states.
    #[serde(default)]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[serde(default)]
    pub attention_probs_dropout_prob: f64,
    /// Layer-norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Side of the square input image, pixels.
    #[serde(default = "default_image")]
    pub image_size: usize,
    /// Side of a square patch, pixels.
    #[serde(default = "default_patch")]
    pub patch_size: usize,
    /// Input channels (3: RGB, 1: greyscale).
    #[serde(default = "default_channels")]
    pub num_channels: usize,
    /// Whether the query, key and value projections have biases.
    #[serde(default = "yes")]
    pub qkv_bias: bool,
}

fn vit() -> String {
    "vit".to_string()
}
fn default_hidden() -> usize {
    768
}
fn default_layers() -> usize {
    12
}
fn default_intermediate() -> usize {
    3072
}
fn default_act() -> Activation {
    Activation::Gelu
}
fn default_eps() -> f64 {
    1e-12
}
fn default_image() -> usize {
    224
}
fn default_patch() -> usize {
    16
}
fn default_channels() -> usize {
    3
}
fn yes() -> bool {
    true
}

impl ViTConfig {
    /// A tiny config for tests: 8 x 8 RGB images in 4 x 4 patches, 2 layers of 16.
    pub fn tiny() -> Self {
        Self {
            model_type: vit(),
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 24,
            hidden_act: Activation::Gelu,
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            layer_norm_eps: 1e-12,
            image_size: 8,
            patch_size: 4,
            num_channels: 3,
            qkv_bias: true,
        }
    }

    /// Patches per image side.
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Patches per image: the positions after `[CLS]`.
    pub fn num_patches(&self) -> usize {
        self.patches_per_side() * self.patches_per_side()
    }

    /// Refuses values no ViT can be built or run with, naming the field: a size of zero, heads
    /// that do not divide `hidden_size`, a patch size that does not divide `image_size`, dropout
    /// outside `[0, 1)`, a `layer_norm_eps` that is not finite and above 0.
    ///
    /// # Errors
    /// [`pet_core::PetError::InvalidConfig`] naming the field.
    pub fn check(&self) -> pet_core::error::Result<()> {
        for (field, value) in [
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("intermediate_size", self.intermediate_size),
            ("image_size", self.image_size),
            ("num_channels", self.num_channels),
        ] {
            config_check::positive(field, value)?;
        }
        config_check::divides(
            "num_attention_heads",
            self.num_attention_heads,
            "hidden_size",
            self.hidden_size,
        )?;
        config_check::divides("patch_size", self.patch_size, "image_size", self.image_size)?;
        config_check::dropout("hidden_dropout_prob", self.hidden_dropout_prob)?;
        config_check::dropout("attention_probs_dropout_prob", self.attention_probs_dropout_prob)?;
        config_check::positive_finite("layer_norm_eps", self.layer_norm_eps)
    }

    /// Checks the sizes against a weights file's header before anything is allocated: every
    /// tensor [`ViTConfig::init`](Self::init) builds (the pooler when `with_pooler`) must be in
    /// the file with the shape the config gives it.
    ///
    /// # Errors
    /// As [`HeaderCheck::tensor`], naming the field and the file's key and shape.
    pub fn check_header(
        &self,
        check: &HeaderCheck<'_>,
        with_pooler: bool,
    ) -> pet_core::error::Result<()> {
        let h = (self.hidden_size, "hidden_size");
        let p = (self.patch_size, "patch_size");
        let projection = "embeddings.patch_embeddings.projection";
        let channels = (self.num_channels, "num_channels");
        check.tensor(&format!("{projection}.weight"), "", &[h, channels, p, p])?;
        check.tensor(&format!("{projection}.bias"), "", &[h])?;
        check.tensor("embeddings.cls_token", "", &[(1, ""), (1, ""), h])?;
        // The patch size fits: a position count that differs is the image size's.
        let key = "embeddings.position_embeddings";
        let positions = self.num_patches() + 1;
        if let Some(found) = check.shape(key).filter(|s| s.len() == 3 && s[1] != positions) {
            return Err(pet_core::PetError::config(
                "image_size",
                format!(
                    "is {} in patches of {}: {} patches and [CLS] make {positions} positions, \
                     but {}: `{key}` has shape {found:?}",
                    self.image_size,
                    self.patch_size,
                    self.num_patches(),
                    check.file()
                ),
            ));
        }
        check.tensor(key, "", &[(1, ""), (positions, "image_size"), h])?;
        let inner = (self.intermediate_size, "intermediate_size");
        let origin = "num_hidden_layers";
        for index in 0..self.num_hidden_layers {
            let base = format!("encoder.layer.{index}");
            for name in ["query", "key", "value"] {
                let key = format!("{base}.attention.attention.{name}");
                check.tensor(&format!("{key}.weight"), origin, &[h, h])?;
                if self.qkv_bias {
                    check.tensor(&format!("{key}.bias"), "qkv_bias", &[h])?;
                }
            }
            check.linear(&format!("{base}.attention.output.dense"), origin, h, h)?;
            check.norm(&format!("{base}.layernorm_before"), origin, h)?;
            check.norm(&format!("{base}.layernorm_after"), origin, h)?;
            check.linear(&format!("{base}.intermediate.dense"), origin, h, inner)?;
            check.linear(&format!("{base}.output.dense"), origin, inner, h)?;
        }
        check.norm("layernorm", "", h)?;
        if with_pooler {
            check.linear("pooler.dense", "", h, h)?;
        }
        Ok(())
    }
}

/// Reads and checks the `config.json` at `path`.
///
/// # Errors
/// [`VisionError::Config`] naming the file and the field; a format or I/O error naming the file.
pub fn read_config(path: &Path) -> Result<ViTConfig> {
    let config: ViTConfig = pet_core::config_json::read_json_config(path)
        .map_err(|e| VisionError::at_config(path, e))?;
    if config.model_type != "vit" {
        return Err(VisionError::Config {
            path: path.to_path_buf(),
            field: "model_type".into(),
            reason: format!("`{}`: pet-vision reads `vit` folders", config.model_type),
        });
    }
    config.check().map_err(|e| VisionError::at_config(path, e))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ViTConfig> {
        let dir = pet_core::testing::TempDir::new("vit-config");
        let path = dir.path().join("config.json");
        std::fs::write(&path, text).expect("write");
        read_config(&path)
    }

    fn field(result: Result<ViTConfig>) -> String {
        match result {
            Err(VisionError::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn hugging_faces_defaults_fill_what_a_config_leaves_out() {
        let config = parse(r#"{"model_type": "vit"}"#).expect("defaults");
        assert_eq!((config.hidden_size, config.num_hidden_layers), (768, 12));
        assert_eq!((config.image_size, config.patch_size, config.num_patches()), (224, 16, 196));
        assert!(config.qkv_bias);
        assert_eq!(config.layer_norm_eps, 1e-12);
    }

    #[test]
    fn values_no_vit_can_use_name_the_field() {
        assert_eq!(field(parse(r#"{"model_type": "vit", "patch_size": 5}"#)), "patch_size");
        assert_eq!(
            field(parse(r#"{"model_type": "vit", "hidden_size": 10}"#)),
            "num_attention_heads"
        );
        assert_eq!(field(parse(r#"{"model_type": "vit", "num_channels": 0}"#)), "num_channels");
        assert_eq!(field(parse(r#"{"model_type": "vit", "layer_norm_eps": 0}"#)), "layer_norm_eps");
        assert_eq!(field(parse(r#"{"model_type": "vit", "hidden_size": "big"}"#)), "hidden_size");
        assert_eq!(field(parse(r#"{"model_type": "bert"}"#)), "model_type");
    }
}
