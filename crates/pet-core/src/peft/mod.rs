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

pub mod fields;

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
        let config = Self::parse_config(&config_path, &text)?;
        let tensors = read_tensor_file(&dir.join(WEIGHTS_FILE))?.tensors;
        Ok(Self { config, tensors, source: dir.to_path_buf() })
    }

    /// The JSON object of an `adapter_config.json` whose text is `text`; `path` names it in
    /// errors. Its fields are checked when a method is read ([`PeftAdapter::check_config`]).
    ///
    /// # Errors
    /// [`PetError::Format`] naming `path` for malformed JSON or a value other than an object.
    pub fn parse_config(path: &Path, text: &str) -> Result<Map<String, Value>> {
        match serde_json::from_str(text).map_err(|e| PetError::format(path, e))? {
            Value::Object(map) => Ok(map),
            _ => Err(PetError::format(path, "expected a JSON object")),
        }
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

    fn flag(&self, key: &str) -> Result<bool> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(value)) => Ok(*value),
            Some(_) => Err(self.config_error(key, "must be true or false")),
        }
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
        self.saved_keys()
            .into_iter()
            .filter_map(|(key, inner)| self.tensors.remove(&key).map(|data| (inner, data)))
            .collect()
    }

    /// The keys of the config's `modules_to_save`, each with its key in the base model.
    fn saved_keys(&self) -> Vec<(String, String)> {
        let names: Vec<String> = match self.config.get("modules_to_save") {
            Some(Value::Array(items)) => {
                items.iter().filter_map(Value::as_str).map(str::to_string).collect()
            }
            _ => return Vec::new(),
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
        self.tensors
            .keys()
            .filter_map(|key| saved_key(key).map(|inner| (key.clone(), inner)))
            .collect()
    }

    /// Refuses `modules_to_save` that hold weights of the backbone (a key under `embeddings`,
    /// `encoder` or `decoder`): pet loads a saved task head beside an adapter, never a full copy
    /// of backbone modules, which would otherwise be ignored.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] naming `modules_to_save` and the key.
    pub fn check_saved_modules(&self) -> Result<()> {
        let backbone = ["embeddings", "encoder", "decoder"];
        for (key, inner) in self.saved_keys() {
            if inner.split('.').any(|segment| backbone.contains(&segment)) {
                return Err(self.config_error(
                    "modules_to_save",
                    format!(
                        "saves backbone weights (`{key}` in {}); pet loads only a task head beside an adapter",
                        self.source.join(WEIGHTS_FILE).display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Refuses every field pet does not implement when it holds a value other than its default,
    /// and every field PEFT 0.17 does not have for the method unless it holds a default-looking
    /// value (see [`fields`]); and `modules_to_save` over backbone weights.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] naming the config file and the field.
    pub fn check_config(&self) -> Result<()> {
        let peft_type = self.peft_type()?;
        for (field, value) in &self.config {
            if let Some(reason) = fields::refusal(peft_type, field, value) {
                return Err(self.config_error(field, reason));
            }
        }
        self.check_saved_modules()
    }

    fn expect_type(&self, expected: PeftType) -> Result<()> {
        let found = self.peft_type()?;
        if found != expected {
            return Err(self.config_error(
                "peft_type",
                format!("is {}, expected {}", found.as_str(), expected.as_str()),
            ));
        }
        self.check_config()
    }

    /// The positive integer `key`.
    fn size_field(&self, key: &str) -> Result<usize> {
        match self.usize_field(key)? {
            0 => Err(self.config_error(key, "must be at least 1, found 0")),
            value => Ok(value),
        }
    }

    /// The integer field `key`, which must equal the backbone's `expected` size.
    fn backbone_field(&self, key: &str, expected: usize) -> Result<usize> {
        match self.usize_field(key)? {
            found if found != expected => {
                Err(self.config_error(key, format!("is {found}, but the backbone has {expected}")))
            }
            found => Ok(found),
        }
    }

    /// Checks that the tensor `key` of the weights file has `expected` dimensions, each given
    /// with the config field it comes from (`None` for the backbone's sizes), before anything
    /// of the config's sizes is allocated.
    fn check_dims(
        &self,
        key: &str,
        data: &TensorData,
        expected: &[(usize, Option<&str>)],
    ) -> Result<()> {
        let found = data.shape.as_slice();
        let sizes: Vec<usize> = expected.iter().map(|(size, _)| *size).collect();
        if found.len() == sizes.len() {
            let field = expected.iter().zip(found).find_map(|((size, field), f)| match field {
                Some(field) if size != f => Some((*field, *size)),
                _ => None,
            });
            if let Some((field, size)) = field {
                return Err(self.config_error(
                    field,
                    format!(
                        "is {size}, but {}: `{key}` has shape {found:?}, not {sizes:?}",
                        self.source.join(WEIGHTS_FILE).display()
                    ),
                ));
            }
        }
        self.check_shape(key, data, &sizes)
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
    /// [`PetError::InvalidConfig`] naming the field for one pet does not implement at the value
    /// it holds (see [`fields`]: DoRA, `fan_in_fan_out`, bias training, per-module rank or
    /// alpha patterns, `layers_to_transform`, ...), a regex `target_modules`, an `r` of 0, a
    /// `lora_alpha` that is not finite or a `lora_dropout` outside `[0, 1)`.
    pub fn lora_config(&self) -> Result<LoraConfig> {
        self.expect_type(PeftType::Lora)?;
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
        let r = self.size_field("r")?;
        let lora_alpha = self.f64_field("lora_alpha", 8.0)?;
        let lora_dropout = self.f64_field("lora_dropout", 0.0)?;
        let named = |e: PetError| match e {
            PetError::InvalidConfig { field, reason } => self.config_error(&field, reason),
            other => other,
        };
        crate::config_check::finite("lora_alpha", lora_alpha).map_err(named)?;
        crate::config_check::dropout("lora_dropout", lora_dropout).map_err(named)?;
        Ok(LoraConfig::new(r)
            .with_lora_alpha(lora_alpha)
            .with_lora_dropout(lora_dropout)
            .with_target_modules(target_modules))
    }

    /// The adapter as a pet [`Lora`] over a backbone with linear sites `sites`. Every weight is
    /// checked against the config (`r`) and the sites before the updates are allocated.
    ///
    /// # Errors
    /// As [`PeftAdapter::lora_config`]; [`PetError::InvalidConfig`] naming `r` when the file's
    /// weights have another rank; [`PetError::MissingWeights`], [`PetError::UnexpectedWeights`]
    /// or [`PetError::ShapeMismatch`] when the weights do not fit.
    pub fn to_lora<B: Backend>(
        &self,
        sites: &[LinearSiteInfo],
        device: &B::Device,
    ) -> Result<Lora<B>> {
        let config = self.lora_config()?;
        let targeted = config.targeted(sites)?;
        // Every weight, checked before anything of the config's sizes is allocated.
        let mut weights = Vec::with_capacity(2 * targeted.len());
        for info in &targeted {
            let r = Some("r");
            for (part, dims) in [
                ("lora_A", [(config.r, r), (info.d_input, None)]),
                ("lora_B", [(info.d_output, None), (config.r, r)]),
            ] {
                let suffix = format!("{}.{part}.weight", info.path);
                let key = self
                    .tensors
                    .keys()
                    .find(|k| *k == &suffix || k.ends_with(&format!(".{suffix}")))
                    .cloned()
                    .unwrap_or_else(|| format!("base_model.model.{suffix}"));
                let data = self.weight(&key)?;
                self.check_dims(&key, data, &dims)?;
                weights.push((key, data));
            }
        }
        let used: Vec<String> = weights.iter().map(|(key, _)| key.clone()).collect();
        self.reject_unused(&used)?;
        let mut lora = config.init_sites::<B>(sites, device)?;
        if self.flag("use_rslora")? {
            lora.scaling = config.lora_alpha / (config.r as f64).sqrt();
        }
        let parts = lora.sites.iter_mut().flat_map(|site| [&mut site.lora_a, &mut site.lora_b]);
        for (linear, (_, data)) in parts.zip(weights) {
            // PEFT stores [out, in]; Burn's Linear holds [in, out].
            let value = tensor::<B, 2>(data, device).transpose();
            linear.weight = replace_value(linear.weight.clone(), value);
        }
        Ok(lora)
    }

    /// The adapter as a pet [`PrefixTuning`] for a backbone of `shape`, with its table as saved
    /// (PEFT saves the reparameterization MLP materialized).
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] when the config's sizes differ from `shape` or from the
    /// saved table (`num_virtual_tokens`), or for a field pet does not implement;
    /// weight errors as [`PeftAdapter::to_lora`].
    pub fn to_prefix<B: Backend>(
        &self,
        shape: BackboneShape,
        device: &B::Device,
    ) -> Result<PrefixTuning<B>> {
        self.expect_type(PeftType::PrefixTuning)?;
        let n = self.size_field("num_virtual_tokens")?;
        for (key, expected) in [
            ("token_dim", shape.hidden_size),
            ("num_layers", shape.encoder_layers),
            ("num_attention_heads", shape.num_heads),
        ] {
            self.backbone_field(key, expected)?;
        }
        let data = self.weight(PROMPT_KEY)?;
        let width = shape.encoder_layers * 2 * shape.hidden_size;
        self.check_dims(PROMPT_KEY, data, &[(n, Some("num_virtual_tokens")), (width, None)])?;
        self.reject_unused(&[PROMPT_KEY.to_string()])?;
        let mut prefix = PrefixTuningConfig::for_backbone(shape, n).init::<B>(device)?;
        prefix.embedding = replace_value(prefix.embedding, tensor(data, device));
        Ok(prefix)
    }

    /// The adapter as a pet [`SoftPrompt`].
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] for a bad `token_dim`, a `num_virtual_tokens` other than the
    /// saved table's, or a field pet does not implement; weight errors as
    /// [`PeftAdapter::to_lora`].
    pub fn to_prompt<B: Backend>(
        &self,
        shape: BackboneShape,
        device: &B::Device,
    ) -> Result<SoftPrompt<B>> {
        self.expect_type(PeftType::PromptTuning)?;
        let n = self.size_field("num_virtual_tokens")?;
        let dim = self.backbone_field("token_dim", shape.hidden_size)?;
        let data = self.weight(PROMPT_KEY)?;
        self.check_dims(
            PROMPT_KEY,
            data,
            &[(n, Some("num_virtual_tokens")), (dim, Some("token_dim"))],
        )?;
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

    use crate::Backbone;
    use crate::delta::lora::LoraConfig;
    use crate::testing::{TestInner as B, TinyEncoderConfig};

    /// A LoRA adapter over the tiny encoder, written to a fresh folder, with `edit` applied to
    /// its config.
    fn lora_folder(name: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> PathBuf {
        let device = Default::default();
        let backbone = TinyEncoderConfig::tiny().init::<B>(&device);
        let sites = backbone.linear_sites();
        let lora = LoraConfig::new(2).init_sites::<B>(&sites, &device).expect("lora");
        let mut adapter = PeftAdapter::from_lora(&lora, &sites, "");
        edit(&mut adapter.config);
        let dir = std::env::temp_dir().join(format!("pet-peft-{name}-{}", std::process::id()));
        adapter.write(&dir).expect("write");
        dir
    }

    fn to_lora(dir: &Path) -> Result<Lora<B>> {
        let backbone = TinyEncoderConfig::tiny().init::<B>(&Default::default());
        PeftAdapter::read(dir)?.to_lora::<B>(&backbone.linear_sites(), &Default::default())
    }

    fn field_of<T: std::fmt::Debug>(result: Result<T>) -> String {
        let (field, reason) = crate::testing::invalid_config(result);
        assert!(field.contains(CONFIG_FILE), "the config file is named: {field}");
        format!("{}|{reason}", field.rsplit(": ").next().unwrap_or_default())
    }

    #[test]
    fn a_rank_the_weights_do_not_hold_is_refused_before_allocating() {
        assert!(to_lora(&lora_folder("fits", |_| {})).is_ok());
        for r in [100_000u64, 1_000_000_000, u64::MAX >> 2] {
            let dir = lora_folder("rank", |c| {
                c.insert("r".into(), r.into());
            });
            let found = field_of(to_lora(&dir));
            assert!(found.starts_with("r|") && found.contains("lora_A.weight"), "{found}");
        }
        let zero = lora_folder("zero", |c| {
            c.insert("r".into(), 0.into());
        });
        assert!(field_of(to_lora(&zero)).starts_with("r|"));
        for (field, value) in
            [("lora_dropout", serde_json::json!(1.5)), ("use_rslora", serde_json::json!("yes"))]
        {
            let dir = lora_folder(field, |c| {
                c.insert(field.into(), value);
            });
            assert!(field_of(to_lora(&dir)).starts_with(&format!("{field}|")));
        }
    }

    #[test]
    fn non_finite_adapter_weights_are_refused_naming_the_file_and_key() {
        let dir = lora_folder("nan", |_| {});
        let mut adapter = PeftAdapter::read(&dir).expect("read");
        let key = adapter.tensors.keys().next().cloned().unwrap_or_default();
        let shape = adapter.tensors[&key].shape.clone();
        let n = shape.iter().product();
        adapter.tensors.insert(key.clone(), TensorData::new(vec![f32::NAN; n], shape));
        adapter.write(&dir).expect("write");
        match PeftAdapter::read(&dir) {
            Err(PetError::NonFinite { path, key: found, index }) => {
                assert_eq!((path, found, index), (dir.join(WEIGHTS_FILE), key, 0));
            }
            other => panic!("expected a non-finite error, got {other:?}"),
        }
    }

    #[test]
    fn unimplemented_peft_fields_are_refused_by_name() {
        for (field, value) in [
            ("layers_to_transform", serde_json::json!([0])),
            ("layers_pattern", serde_json::json!("layer")),
            ("exclude_modules", serde_json::json!(["value"])),
            ("use_dora", serde_json::json!(true)),
            ("init_lora_weights", serde_json::json!("pissa")),
            ("megatron_config", serde_json::json!({"tensor_model_parallel_size": 2})),
            ("trainable_token_indices", serde_json::json!({"embeddings": [3]})),
            ("a_field_from_the_future", serde_json::json!(7)),
        ] {
            let dir = lora_folder(field, |c| {
                c.insert(field.into(), value.clone());
            });
            let found = field_of(to_lora(&dir));
            assert!(found.starts_with(&format!("{field}|")), "{field}: {found}");
        }
        // Harmless fields and defaults load.
        let dir = lora_folder("harmless", |c| {
            c.insert("megatron_config".into(), Value::Null);
            c.insert("eva_config".into(), serde_json::json!({"rho": 2.0}));
            c.insert("init_lora_weights".into(), "gaussian".into());
            c.insert("layers_to_transform".into(), Value::Null);
        });
        assert!(to_lora(&dir).is_ok());
    }

    #[test]
    fn saved_backbone_modules_are_refused() {
        let dir = lora_folder("saved", |c| {
            c.insert("modules_to_save".into(), serde_json::json!(["embeddings"]));
        });
        let mut adapter = PeftAdapter::read(&dir).expect("read");
        adapter.tensors.insert(
            "base_model.model.embeddings.word_embeddings.weight".into(),
            TensorData::new(vec![0f32; 32 * 16], [32, 16]),
        );
        let found = field_of(adapter.check_config());
        assert!(
            found.starts_with("modules_to_save|") && found.contains("word_embeddings"),
            "{found}"
        );
    }

    #[test]
    fn a_prompt_length_the_table_does_not_hold_is_refused() {
        let device = Default::default();
        let backbone = TinyEncoderConfig::tiny().init::<B>(&device);
        let prompt = PromptTuningConfig::new(3, 16).init::<B>(None, &device).expect("prompt");
        let mut adapter = PeftAdapter::from_prompt(&prompt, 2, 2);
        adapter.source = PathBuf::from("adapter");
        adapter.config.insert("num_virtual_tokens".into(), 1_000_000_000u64.into());
        let found = field_of(adapter.to_prompt::<B>(backbone.shape(), &device));
        assert!(found.starts_with("num_virtual_tokens|"), "{found}");
        let prefix = PrefixTuningConfig::for_backbone(backbone.shape(), 3)
            .init::<B>(&device)
            .expect("prefix");
        let mut adapter = PeftAdapter::from_prefix(&prefix);
        adapter.source = PathBuf::from("adapter");
        adapter.config.insert("num_virtual_tokens".into(), 1_000_000_000u64.into());
        let found = field_of(adapter.to_prefix::<B>(backbone.shape(), &device));
        assert!(found.starts_with("num_virtual_tokens|"), "{found}");
        adapter.config.insert("num_virtual_tokens".into(), 3.into());
        adapter.config.insert("num_transformer_submodules".into(), 2.into());
        let found = field_of(adapter.to_prefix::<B>(backbone.shape(), &device));
        assert!(found.starts_with("num_transformer_submodules|"), "{found}");
    }
}
