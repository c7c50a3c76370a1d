//! PEFT adapter interop: read and write `adapter_config.json` + `adapter_model.safetensors` for
//! `LORA`, `PREFIX_TUNING` and `PROMPT_TUNING`.
//!
//! Key mapping (PEFT 0.17, adapter name removed as `save_pretrained` does):
//!
//! | PEFT key | shape | pet |
//! |---|---|---|
//! | `base_model.model.<site path>.lora_A.weight` | `[r, d_in]` | [`LoraSite::lora_a`] weight, transposed |
//! | `base_model.model.<site path>.lora_B.weight` | `[d_out, r]` | [`LoraSite::lora_b`] weight, transposed |
//! | `prompt_embeddings` (prefix tuning) | `[n, L * 2 * d]` | [`PrefixTuning::embedding`], no projection (PEFT saves the MLP materialized) |
//! | `prompt_embeddings` (prompt tuning) | `[n, d]` | [`SoftPrompt::embedding`] |
//!
//! `<site path>` is the Hugging Face module path of a linear site, possibly under a task model's
//! prefix (`bert.`, `roberta.`); keys match a site when they end with its path. The config file
//! is kept whole, so fields pet does not use survive a read/write round trip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use serde_json::{Map, Value};

use crate::delta::lora::{Lora, LoraConfig, LoraSite};
use crate::delta::prefix::{PrefixTuning, PrefixTuningConfig};
use crate::delta::prompt::{PromptTuningConfig, SoftPrompt};
use crate::error::{PetError, Result};
use crate::params::replace_value;
use crate::safetensors_io::{TensorFile, read_tensor_file, write_atomically, write_tensor_file};
use crate::seam::{BackboneShape, LinearSiteInfo};

/// File name of the adapter config.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// File name of the adapter weights.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const PROMPT_KEY: &str = "prompt_embeddings";

/// The PEFT methods pet reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeftType {
    /// `LORA`
    Lora,
    /// `PREFIX_TUNING`
    PrefixTuning,
    /// `PROMPT_TUNING`
    PromptTuning,
}

impl PeftType {
    /// PEFT's name of the method.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Lora => "LORA",
            Self::PrefixTuning => "PREFIX_TUNING",
            Self::PromptTuning => "PROMPT_TUNING",
        }
    }
}

/// A PEFT adapter folder, in memory.
#[derive(Clone, Debug)]
pub struct PeftAdapter {
    /// `adapter_config.json`, whole.
    pub config: Map<String, Value>,
    /// `adapter_model.safetensors`, by key.
    pub tensors: BTreeMap<String, TensorData>,
    /// The folder it was read from, for error messages.
    pub source: PathBuf,
}

fn tensor<B: Backend, const D: usize>(data: &TensorData, device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(data.clone(), device)
}

impl PeftAdapter {
    /// Reads an adapter folder.
    ///
    /// # Errors
    /// [`PetError::Io`] for a missing file, [`PetError::Format`] for malformed JSON or weights.
    pub fn read(dir: &Path) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let text =
            std::fs::read_to_string(&config_path).map_err(|e| PetError::io(&config_path, e))?;
        let config =
            match serde_json::from_str(&text).map_err(|e| PetError::format(&config_path, e))? {
                Value::Object(map) => map,
                _ => return Err(PetError::format(&config_path, "expected a JSON object")),
            };
        let tensors = read_tensor_file(&dir.join(WEIGHTS_FILE))?.tensors;
        Ok(Self { config, tensors, source: dir.to_path_buf() })
    }

    /// Writes the adapter into `dir` (created if needed).
    ///
    /// # Errors
    /// [`PetError::Io`] when the folder or files cannot be written.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| PetError::io(dir, e))?;
        let json = serde_json::to_string_pretty(&Value::Object(self.config.clone()))
            .map_err(|e| PetError::format(dir.join(CONFIG_FILE), e))?;
        write_atomically(&dir.join(CONFIG_FILE), json.as_bytes())?;
        let mut metadata = BTreeMap::new();
        metadata.insert("format".to_string(), "pt".to_string());
        write_tensor_file(
            &dir.join(WEIGHTS_FILE),
            &TensorFile { tensors: self.tensors.clone(), metadata },
        )
    }

    fn config_error(&self, field: &str, reason: impl Into<String>) -> PetError {
        PetError::config(format!("{}: {field}", self.source.join(CONFIG_FILE).display()), reason)
    }

    fn field(&self, key: &str) -> Result<&Value> {
        self.config
            .get(key)
            .filter(|v| !v.is_null())
            .ok_or_else(|| self.config_error(key, "is missing"))
    }

    fn usize_field(&self, key: &str) -> Result<usize> {
        self.field(key)?
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| self.config_error(key, "must be a non-negative integer"))
    }

    fn f64_field(&self, key: &str, default: f64) -> Result<f64> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.config_error(key, "must be a number")),
        }
    }

    fn flag(&self, key: &str) -> bool {
        self.config.get(key).and_then(Value::as_bool).unwrap_or(false)
    }

    /// The method of this adapter.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] for a method pet does not read.
    pub fn peft_type(&self) -> Result<PeftType> {
        match self.field("peft_type")?.as_str() {
            Some("LORA") => Ok(PeftType::Lora),
            Some("PREFIX_TUNING") => Ok(PeftType::PrefixTuning),
            Some("PROMPT_TUNING") => Ok(PeftType::PromptTuning),
            other => Err(self.config_error(
                "peft_type",
                format!("{other:?} is not one of LORA, PREFIX_TUNING, PROMPT_TUNING"),
            )),
        }
    }

    /// `task_type` of the config (`SEQ_CLS`, `TOKEN_CLS`, `QUESTION_ANS`, ...), when set.
    pub fn task_type(&self) -> Option<&str> {
        self.config.get("task_type").and_then(Value::as_str)
    }

    /// Removes the weights of the config's `modules_to_save` (the task head PEFT trains beside
    /// the adapter, e.g. `classifier` for `SEQ_CLS`) and returns them keyed as in the base model
    /// (`classifier.weight`): PEFT's `base_model.model.` (LoRA) or `base_model.` (prompt
    /// learning) prefix removed. A key belongs to a module when a module path of the key equals
    /// a listed name or ends with `.name`, PEFT's rule.
    pub fn take_saved_modules(&mut self) -> BTreeMap<String, TensorData> {
        let names: Vec<String> = match self.config.get("modules_to_save") {
            Some(Value::Array(items)) => {
                items.iter().filter_map(Value::as_str).map(str::to_string).collect()
            }
            _ => return BTreeMap::new(),
        };
        let saved_key = |key: &str| -> Option<String> {
            let inner = key
                .strip_prefix("base_model.model.")
                .or_else(|| key.strip_prefix("base_model."))?;
            let (module, _) = inner.rsplit_once('.')?;
            let matches =
                module.match_indices('.').map(|(i, _)| &module[..i]).chain([module]).any(|path| {
                    names.iter().any(|n| path == n || path.ends_with(&format!(".{n}")))
                });
            matches.then(|| inner.to_string())
        };
        let keys: Vec<(String, String)> = self
            .tensors
            .keys()
            .filter_map(|key| saved_key(key).map(|inner| (key.clone(), inner)))
            .collect();
        keys.into_iter()
            .filter_map(|(key, inner)| self.tensors.remove(&key).map(|data| (inner, data)))
            .collect()
    }

    fn expect_type(&self, expected: PeftType) -> Result<()> {
        let found = self.peft_type()?;
        if found != expected {
            return Err(self.config_error(
                "peft_type",
                format!("is {}, expected {}", found.as_str(), expected.as_str()),
            ));
        }
        Ok(())
    }

    fn weight(&self, key: &str) -> Result<&TensorData> {
        self.tensors.get(key).ok_or_else(|| PetError::MissingWeights {
            file: self.source.join(WEIGHTS_FILE).display().to_string(),
            keys: vec![key.to_string()],
        })
    }

    fn check_shape(&self, key: &str, data: &TensorData, expected: &[usize]) -> Result<()> {
        if data.shape.as_slice() != expected {
            return Err(PetError::ShapeMismatch {
                path: format!("{}: {key}", self.source.join(WEIGHTS_FILE).display()),
                expected: expected.to_vec(),
                found: data.shape.to_vec(),
            });
        }
        Ok(())
    }

    fn reject_unused(&self, used: &[String]) -> Result<()> {
        let unexpected: Vec<String> =
            self.tensors.keys().filter(|k| !used.contains(k)).cloned().collect();
        if unexpected.is_empty() {
            Ok(())
        } else {
            Err(PetError::UnexpectedWeights {
                file: self.source.join(WEIGHTS_FILE).display().to_string(),
                keys: unexpected,
            })
        }
    }

    /// The LoRA config this adapter describes.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] for a field pet cannot honour (DoRA, `fan_in_fan_out`, bias
    /// training, per-module rank or alpha patterns, a regex `target_modules`).
    pub fn lora_config(&self) -> Result<LoraConfig> {
        self.expect_type(PeftType::Lora)?;
        for flag in ["use_dora", "fan_in_fan_out", "lora_bias"] {
            if self.flag(flag) {
                return Err(self.config_error(flag, "is not supported by pet"));
            }
        }
        for pattern in ["rank_pattern", "alpha_pattern"] {
            if self.config.get(pattern).and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
                return Err(
                    self.config_error(pattern, "per-module patterns are not supported by pet")
                );
            }
        }
        if let Some(bias) = self.config.get("bias").and_then(Value::as_str).filter(|b| *b != "none")
        {
            return Err(
                self.config_error("bias", format!("`{bias}` is not supported; only `none`"))
            );
        }
        let target_modules = match self.field("target_modules")? {
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.config_error("target_modules", "must hold strings"))
                })
                .collect::<Result<Vec<_>>>()?,
            _ => {
                return Err(self.config_error(
                    "target_modules",
                    "a regex string is not supported; give a list of names",
                ));
            }
        };
        let r = self.usize_field("r")?;
        Ok(LoraConfig::new(r)
            .with_lora_alpha(self.f64_field("lora_alpha", 8.0)?)
            .with_lora_dropout(self.f64_field("lora_dropout", 0.0)?)
            .with_target_modules(target_modules))
    }

    /// The adapter as a pet [`Lora`] over a backbone with linear sites `sites`.
    ///
    /// # Errors
    /// As [`PeftAdapter::lora_config`]; [`PetError::MissingWeights`],
    /// [`PetError::UnexpectedWeights`] or [`PetError::ShapeMismatch`] when the weights do not fit.
    pub fn to_lora<B: Backend>(
        &self,
        sites: &[LinearSiteInfo],
        device: &B::Device,
    ) -> Result<Lora<B>> {
        let config = self.lora_config()?;
        let mut lora = config.init_sites::<B>(sites, device)?;
        if self.flag("use_rslora") {
            lora.scaling = config.lora_alpha / (config.r as f64).sqrt();
        }
        let targeted = config.targeted(sites)?;
        let mut used = Vec::new();
        for (site, info) in lora.sites.iter_mut().zip(&targeted) {
            for (part, rows, cols) in
                [("lora_A", config.r, info.d_input), ("lora_B", info.d_output, config.r)]
            {
                let suffix = format!("{}.{part}.weight", info.path);
                let key = self
                    .tensors
                    .keys()
                    .find(|k| *k == &suffix || k.ends_with(&format!(".{suffix}")))
                    .cloned()
                    .unwrap_or_else(|| format!("base_model.model.{suffix}"));
                let data = self.weight(&key)?;
                self.check_shape(&key, data, &[rows, cols])?;
                // PEFT stores [out, in]; Burn's Linear holds [in, out].
                let value = tensor::<B, 2>(data, device).transpose();
                let linear = if part == "lora_A" { &mut site.lora_a } else { &mut site.lora_b };
                linear.weight = replace_value(linear.weight.clone(), value);
                used.push(key);
            }
        }
        self.reject_unused(&used)?;
        Ok(lora)
    }

    /// The adapter as a pet [`PrefixTuning`] for a backbone of `shape`, with its table as saved
    /// (PEFT saves the reparameterization MLP materialized).
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] when the config's sizes differ from `shape`;
    /// weight errors as [`PeftAdapter::to_lora`].
    pub fn to_prefix<B: Backend>(
        &self,
        shape: BackboneShape,
        device: &B::Device,
    ) -> Result<PrefixTuning<B>> {
        self.expect_type(PeftType::PrefixTuning)?;
        let n = self.usize_field("num_virtual_tokens")?;
        for (key, expected) in [
            ("token_dim", shape.hidden_size),
            ("num_layers", shape.encoder_layers),
            ("num_attention_heads", shape.num_heads),
        ] {
            let found = self.usize_field(key)?;
            if found != expected {
                return Err(
                    self.config_error(key, format!("is {found}, but the backbone has {expected}"))
                );
            }
        }
        let data = self.weight(PROMPT_KEY)?;
        self.check_shape(PROMPT_KEY, data, &[n, shape.encoder_layers * 2 * shape.hidden_size])?;
        self.reject_unused(&[PROMPT_KEY.to_string()])?;
        let mut prefix = PrefixTuningConfig::for_backbone(shape, n).init::<B>(device)?;
        prefix.embedding = replace_value(prefix.embedding, tensor(data, device));
        Ok(prefix)
    }

    /// The adapter as a pet [`SoftPrompt`].
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] for a bad `token_dim`; weight errors as
    /// [`PeftAdapter::to_lora`].
    pub fn to_prompt<B: Backend>(
        &self,
        shape: BackboneShape,
        device: &B::Device,
    ) -> Result<SoftPrompt<B>> {
        self.expect_type(PeftType::PromptTuning)?;
        let n = self.usize_field("num_virtual_tokens")?;
        let dim = self.usize_field("token_dim")?;
        if dim != shape.hidden_size {
            return Err(self.config_error(
                "token_dim",
                format!("is {dim}, but the backbone has {}", shape.hidden_size),
            ));
        }
        let data = self.weight(PROMPT_KEY)?;
        self.check_shape(PROMPT_KEY, data, &[n, dim])?;
        self.reject_unused(&[PROMPT_KEY.to_string()])?;
        let prompt = SoftPrompt { embedding: Param::from_tensor(tensor(data, device)) };
        Ok(prompt)
    }

    fn base_config(peft_type: PeftType) -> Map<String, Value> {
        let mut config = Map::new();
        config.insert("peft_type".into(), peft_type.as_str().into());
        config.insert("task_type".into(), Value::Null);
        config.insert("inference_mode".into(), true.into());
        config.insert("base_model_name_or_path".into(), Value::Null);
        config.insert("revision".into(), Value::Null);
        config.insert("modules_to_save".into(), Value::Null);
        config
    }

    /// A PEFT `LORA` adapter holding `lora`; keys are `base_model.model.<model_prefix><site path>`.
    pub fn from_lora<B: Backend>(
        lora: &Lora<B>,
        sites: &[LinearSiteInfo],
        model_prefix: &str,
    ) -> Self {
        let mut config = Self::base_config(PeftType::Lora);
        let r = lora.rank();
        let mut targets = Vec::new();
        let mut tensors = BTreeMap::new();
        for site in &lora.sites {
            let Some(info) = sites.iter().find(|s| s.site == site.site) else { continue };
            // The module path below the layer index, e.g. `attention.self.query`.
            let layer = format!(".{}.", info.site.layer);
            let leaf = info
                .path
                .split_once(&layer)
                .map_or(info.path.as_str(), |(_, rest)| rest)
                .to_string();
            if !targets.contains(&leaf) {
                targets.push(leaf);
            }
            let key =
                |part: &str| format!("base_model.model.{model_prefix}{}.{part}.weight", info.path);
            tensors.insert(key("lora_A"), lora_weight(site, true));
            tensors.insert(key("lora_B"), lora_weight(site, false));
        }
        config.insert("r".into(), r.into());
        config.insert("lora_alpha".into(), json_number(lora.scaling * r as f64));
        config.insert("lora_dropout".into(), 0.0.into());
        config.insert("target_modules".into(), targets.into());
        config.insert("bias".into(), "none".into());
        config.insert("fan_in_fan_out".into(), false.into());
        config.insert("use_rslora".into(), false.into());
        config.insert("use_dora".into(), false.into());
        config.insert("init_lora_weights".into(), true.into());
        Self { config, tensors, source: PathBuf::new() }
    }

    /// A PEFT `PREFIX_TUNING` adapter holding `prefix`, materialized.
    pub fn from_prefix<B: Backend>(prefix: &PrefixTuning<B>) -> Self {
        let table = prefix.table();
        let c: PrefixTuningConfig = prefix.config();
        let mut config = Self::base_config(PeftType::PrefixTuning);
        config.insert("num_virtual_tokens".into(), c.num_virtual_tokens.into());
        config.insert("token_dim".into(), (table.dims()[1] / (2 * c.num_layers)).into());
        config.insert("num_layers".into(), c.num_layers.into());
        config.insert("num_attention_heads".into(), c.num_attention_heads.into());
        config.insert("num_transformer_submodules".into(), 1.into());
        config.insert("prefix_projection".into(), c.prefix_projection.into());
        config.insert("encoder_hidden_size".into(), c.encoder_hidden_size.into());
        let tensors =
            BTreeMap::from([(PROMPT_KEY.to_string(), table.into_data().convert::<f32>())]);
        Self { config, tensors, source: PathBuf::new() }
    }

    /// A PEFT `PROMPT_TUNING` adapter holding `prompt`.
    pub fn from_prompt<B: Backend>(
        prompt: &SoftPrompt<B>,
        num_layers: usize,
        num_heads: usize,
    ) -> Self {
        let c: PromptTuningConfig = prompt.config();
        let mut config = Self::base_config(PeftType::PromptTuning);
        config.insert("num_virtual_tokens".into(), c.num_virtual_tokens.into());
        config.insert("token_dim".into(), c.token_dim.into());
        config.insert("num_layers".into(), num_layers.into());
        config.insert("num_attention_heads".into(), num_heads.into());
        config.insert("num_transformer_submodules".into(), 1.into());
        config.insert("prompt_tuning_init".into(), "RANDOM".into());
        let data = prompt.embedding.val().into_data().convert::<f32>();
        Self {
            config,
            tensors: BTreeMap::from([(PROMPT_KEY.to_string(), data)]),
            source: PathBuf::new(),
        }
    }
}

/// A JSON number, integral when the value is (PEFT writes `lora_alpha` as an integer).
fn json_number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        Value::from(value as i64)
    } else {
        Value::from(value)
    }
}

fn lora_weight<B: Backend>(site: &LoraSite<B>, a: bool) -> TensorData {
    let linear = if a { &site.lora_a } else { &site.lora_b };
    linear.weight.val().transpose().into_data().convert::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(keys: &[&str], modules_to_save: Value) -> PeftAdapter {
        let mut config = Map::new();
        config.insert("modules_to_save".into(), modules_to_save);
        let tensors =
            keys.iter().map(|k| (k.to_string(), TensorData::new(vec![0.0f32], [1]))).collect();
        PeftAdapter { config, tensors, source: PathBuf::from("adapter") }
    }

    #[test]
    fn saved_modules_are_taken_out_with_peft_prefixes_removed() {
        let mut lora = adapter(
            &[
                "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight",
                "base_model.model.classifier.weight",
                "base_model.model.classifier.out_proj.bias",
                "base_model.model.scores.weight",
            ],
            serde_json::json!(["classifier", "score"]),
        );
        let saved = lora.take_saved_modules();
        assert_eq!(
            saved.keys().collect::<Vec<_>>(),
            ["classifier.out_proj.bias", "classifier.weight"]
        );
        assert_eq!(lora.tensors.len(), 2, "the LoRA weight and `scores` stay");

        let mut prompt = adapter(
            &["prompt_embeddings", "base_model.qa_outputs.weight"],
            serde_json::json!(["qa_outputs"]),
        );
        assert_eq!(prompt.take_saved_modules().keys().collect::<Vec<_>>(), ["qa_outputs.weight"]);
        assert_eq!(prompt.tensors.keys().collect::<Vec<_>>(), ["prompt_embeddings"]);

        let mut none = adapter(&["base_model.model.classifier.weight"], Value::Null);
        assert!(none.take_saved_modules().is_empty());
    }
}
