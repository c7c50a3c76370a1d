//! Delta checkpoints: a safetensors file holding only what training changed (the delta, the head
//! and any backbone parameters a [`Trainability`](crate::Trainability) policy trained, such as
//! BitFit's biases), keyed by parameter path, with metadata:
//!
//! | key | value |
//! |---|---|
//! | `format` | `pet-delta` |
//! | `format_version` | [`FORMAT_VERSION`] |
//! | `method` | JSON of the method's config, as the caller describes it |
//! | `backbone` | JSON of the [`BackboneIdentity`] |
//! | `param_counts` | JSON `{"trainable", "total"}` of the whole model when it was saved |
//! | `pet_version` | version of pet-core that wrote it |
//!
//! Loading onto a backbone with another identity is [`PetError::BackboneMismatch`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{TensorData, backend::Backend};

use crate::backbone::BackboneIdentity;
use crate::error::{PetError, Result};
use crate::params::{ParamEntry, param_entries, read_params, write_params};
use crate::report::{ParamCount, ParamReport};
use crate::safetensors_io::{TensorFile, read_tensor_file, write_tensor_file};

/// Version of the checkpoint layout.
pub const FORMAT_VERSION: &str = "1";

/// A delta checkpoint, in memory.
#[derive(Clone, Debug)]
pub struct DeltaCheckpoint {
    /// The method's config.
    pub method: serde_json::Value,
    /// The backbone it was trained on.
    pub backbone: BackboneIdentity,
    /// Parameters by path.
    pub tensors: BTreeMap<String, TensorData>,
    /// Trainable and total parameters of the model it was captured from.
    pub counts: Option<ParamCount>,
    /// Where it was read from, for error messages.
    pub source: PathBuf,
}

impl DeltaCheckpoint {
    /// The parameters of `model` that `select` keeps (usually the trainable ones).
    pub fn capture<B: Backend, M: Module<B>>(
        model: &M,
        select: &dyn Fn(&ParamEntry) -> bool,
        method: serde_json::Value,
        backbone: BackboneIdentity,
    ) -> Self {
        let counts = Some(ParamReport::of::<B, M>(model, 0).overall);
        Self {
            method,
            backbone,
            tensors: read_params(model, select),
            counts,
            source: PathBuf::new(),
        }
    }

    /// The shape of every stored tensor, by path.
    pub fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        self.tensors.iter().map(|(k, v)| (k.clone(), v.shape.to_vec())).collect()
    }

    /// Number of stored scalars.
    pub fn num_params(&self) -> usize {
        self.tensors.values().map(|t| t.num_elements()).sum()
    }

    /// Writes the checkpoint to `path`, atomically.
    ///
    /// # Errors
    /// [`PetError::Io`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut metadata = BTreeMap::new();
        metadata.insert("format".to_string(), "pet-delta".to_string());
        metadata.insert("format_version".to_string(), FORMAT_VERSION.to_string());
        metadata.insert("method".to_string(), self.method.to_string());
        metadata.insert(
            "backbone".to_string(),
            serde_json::to_string(&self.backbone).map_err(|e| PetError::format(path, e))?,
        );
        if let Some(counts) = &self.counts {
            metadata.insert("param_counts".to_string(), serde_json::json!(counts).to_string());
        }
        metadata.insert("pet_version".to_string(), env!("CARGO_PKG_VERSION").to_string());
        write_tensor_file(path, &TensorFile { tensors: self.tensors.clone(), metadata })
    }

    /// Reads a checkpoint.
    ///
    /// # Errors
    /// [`PetError::Io`] for an unreadable file, [`PetError::Format`] when it is not a pet delta
    /// checkpoint of a known version.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_tensor_file(path, read_tensor_file(path)?)
    }

    /// The checkpoint in `file`, as read from `path` (named in errors).
    ///
    /// # Errors
    /// [`PetError::Format`] when `file` is not a pet delta checkpoint of a known version.
    pub fn from_tensor_file(path: &Path, file: TensorFile) -> Result<Self> {
        let field = |key: &str| {
            file.metadata.get(key).ok_or_else(|| {
                PetError::format(
                    path,
                    format!("metadata has no `{key}`: not a pet delta checkpoint"),
                )
            })
        };
        if field("format")? != "pet-delta" {
            return Err(PetError::format(path, "metadata `format` is not `pet-delta`"));
        }
        let version = field("format_version")?;
        if version != FORMAT_VERSION {
            return Err(PetError::format(
                path,
                format!("format version {version} is not {FORMAT_VERSION}"),
            ));
        }
        let method = serde_json::from_str(field("method")?)
            .map_err(|e| PetError::format(path, format!("metadata `method`: {e}")))?;
        let backbone = serde_json::from_str(field("backbone")?)
            .map_err(|e| PetError::format(path, format!("metadata `backbone`: {e}")))?;
        let counts = match file.metadata.get("param_counts") {
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| PetError::format(path, format!("metadata `param_counts`: {e}")))?,
            ),
            None => None,
        };
        Ok(Self { method, backbone, tensors: file.tensors, counts, source: path.to_path_buf() })
    }

    /// `model` with the checkpoint's parameters loaded.
    ///
    /// Every stored tensor must land on a parameter of `model`, and every parameter of `model`
    /// under one of `required` path prefixes (e.g. `["delta", "head"]`) must be stored.
    ///
    /// # Errors
    /// [`PetError::BackboneMismatch`] when `backbone` is not the identity recorded;
    /// [`PetError::UnexpectedWeights`], [`PetError::MissingWeights`] or
    /// [`PetError::ShapeMismatch`] when the stored tensors do not fit `model`.
    pub fn apply<B: Backend, M: Module<B>>(
        &self,
        model: M,
        backbone: &BackboneIdentity,
        required: &[&str],
    ) -> Result<M> {
        if !self.backbone.is_compatible(backbone) {
            return Err(PetError::BackboneMismatch {
                path: self.source.clone(),
                expected: self.backbone.to_string(),
                found: backbone.to_string(),
            });
        }
        let file = self.source.display().to_string();
        let missing: Vec<String> = param_entries::<B, M>(&model)
            .into_iter()
            .map(|e| e.path)
            .filter(|p| required.iter().any(|r| p == r || p.starts_with(&format!("{r}."))))
            .filter(|p| !self.tensors.contains_key(p))
            .collect();
        if !missing.is_empty() {
            return Err(PetError::MissingWeights { file, keys: missing });
        }
        let (model, used) = write_params(model, &self.tensors).map_err(|e| match e {
            PetError::ShapeMismatch { path, expected, found } => {
                PetError::ShapeMismatch { path: format!("{file}: {path}"), expected, found }
            }
            other => other,
        })?;
        let unexpected: Vec<String> =
            self.tensors.keys().filter(|k| !used.contains(*k)).cloned().collect();
        if !unexpected.is_empty() {
            return Err(PetError::UnexpectedWeights { file, keys: unexpected });
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backbone;
    use crate::delta::prompt::PromptTuningConfig;
    use crate::testing::conformance::Tuned;
    use crate::testing::{TestBackend as B, TinyEncoderConfig};

    fn saved(
        name: &str,
    ) -> (Tuned<B, crate::testing::TinyEncoder<B>, crate::delta::prompt::SoftPrompt<B>>, PathBuf)
    {
        let device = Default::default();
        let backbone =
            crate::Trainability::Frozen.apply(TinyEncoderConfig::tiny().init::<B>(&device));
        let delta = PromptTuningConfig::new(2, 16)
            .init(backbone.word_embeddings().as_ref(), &device)
            .expect("prompt");
        let model = Tuned { backbone, delta, backend: Default::default() };
        let checkpoint = DeltaCheckpoint::capture::<B, _>(
            &model,
            &|e| e.trainable,
            serde_json::json!({"method": "prompt"}),
            model.backbone.identity(),
        );
        let path = std::env::temp_dir()
            .join(format!("pet-ckpt-{name}-{}.safetensors", std::process::id()));
        checkpoint.save(&path).expect("save");
        (model, path)
    }

    #[test]
    fn checkpoint_holds_only_the_trainable_delta_and_its_metadata() {
        let (_, path) = saved("only");
        let loaded = DeltaCheckpoint::load(&path).expect("load");
        assert_eq!(loaded.tensors.keys().collect::<Vec<_>>(), vec!["delta.embedding"]);
        assert_eq!(loaded.method["method"], "prompt");
        assert_eq!(loaded.backbone.architecture, "tiny-encoder");
        let counts = loaded.counts.expect("counts");
        assert_eq!(counts.trainable, 32);
        assert!(counts.total > 32);
    }

    #[test]
    fn loading_onto_another_backbone_is_a_typed_error() {
        let (model, path) = saved("mismatch");
        let loaded = DeltaCheckpoint::load(&path).expect("load");
        let other = TinyEncoderConfig { num_hidden_layers: 3, ..TinyEncoderConfig::tiny() }
            .init::<B>(&Default::default());
        let err = loaded
            .apply::<B, _>(model, &other.identity(), &["delta"])
            .expect_err("another backbone");
        assert!(matches!(err, PetError::BackboneMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn unexpected_and_missing_keys_are_named() {
        let (model, path) = saved("keys");
        let identity = model.backbone.identity();
        let mut loaded = DeltaCheckpoint::load(&path).expect("load");
        let value = loaded.tensors.remove("delta.embedding").expect("stored");
        let err = loaded.apply::<B, _>(model.clone(), &identity, &["delta"]).expect_err("missing");
        assert!(
            matches!(&err, PetError::MissingWeights { keys, .. } if keys == &vec!["delta.embedding".to_string()]),
            "{err}"
        );
        loaded.tensors.insert("delta.embedding".into(), value.clone());
        loaded.tensors.insert("head.weight".into(), value);
        let err = loaded.apply::<B, _>(model, &identity, &["delta"]).expect_err("unexpected");
        assert!(
            matches!(&err, PetError::UnexpectedWeights { keys, .. } if keys == &vec!["head.weight".to_string()]),
            "{err}"
        );
    }

    #[test]
    fn a_shape_mismatch_names_the_parameter() {
        let (model, path) = saved("shape");
        let identity = model.backbone.identity();
        let mut loaded = DeltaCheckpoint::load(&path).expect("load");
        loaded.tensors.insert("delta.embedding".into(), TensorData::new(vec![0f32; 48], [3, 16]));
        let err = loaded.apply::<B, _>(model, &identity, &["delta"]).expect_err("shape");
        assert!(
            matches!(&err, PetError::ShapeMismatch { path, expected, found } if path == &format!("{}: delta.embedding", loaded.source.display()) && expected == &vec![2, 16] && found == &vec![3, 16]),
            "{err}"
        );
    }

    #[test]
    fn non_finite_delta_values_are_refused_naming_the_file_and_key() {
        let (_, path) = saved("nan");
        let mut loaded = DeltaCheckpoint::load(&path).expect("load");
        let mut values = vec![0.5f32; 32];
        values[7] = f32::INFINITY;
        loaded.tensors.insert("delta.embedding".into(), TensorData::new(values, [2, 16]));
        loaded.save(&path).expect("save");
        match DeltaCheckpoint::load(&path) {
            Err(PetError::NonFinite { path: p, key, index }) => {
                assert_eq!((p, key.as_str(), index), (path, "delta.embedding", 7));
            }
            other => panic!("expected a non-finite error, got {other:?}"),
        }
    }

    #[test]
    fn a_file_that_is_not_a_checkpoint_is_refused() {
        let path =
            std::env::temp_dir().join(format!("pet-ckpt-plain-{}.safetensors", std::process::id()));
        let mut file = TensorFile::default();
        file.tensors.insert("w".into(), TensorData::new(vec![1f32], [1]));
        crate::safetensors_io::write_tensor_file(&path, &file).expect("write");
        let err = DeltaCheckpoint::load(&path).expect_err("plain safetensors");
        assert!(err.to_string().contains("not a pet delta checkpoint"), "{err}");
    }
}
