//! What every text task shares: the model folder, its tokenizer (when the folder has a
//! `tokenizer.json`; pre-tokenized inputs need none), the encoder it loads, and the reading of
//! options and labels back from checkpoint metadata.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;

use crate::backbone::NlpBackbone;
use crate::data::LabelSet;
use crate::error::{NlpError, Result};
use crate::folder::{EncoderFolder, load_encoder};
use crate::tokenize::TextTokenizer;

/// A model folder and its tokenizer, truncating to the task's `max_length`.
#[derive(Clone, Debug)]
pub struct TextFolder {
    /// The model folder.
    pub dir: PathBuf,
    tokenizer: Option<TextTokenizer>,
    /// What loading the encoder read besides it: `config.json`'s labels and the task layers of
    /// a task checkpoint (the encoder's own weights are dropped).
    loaded: Option<EncoderFolder>,
}

/// `max_length` when a job names none.
pub fn default_max_length() -> usize {
    128
}

impl TextFolder {
    /// The folder `dir`, with its `tokenizer.json` when it has one.
    ///
    /// # Errors
    /// [`NlpError::Tokenizer`] when `tokenizer.json` exists but cannot be read.
    pub fn open(dir: &Path, max_length: usize) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let tokenizer = match path.is_file() {
            true => Some(TextTokenizer::from_file(&path, max_length)?),
            false => None,
        };
        Ok(Self { dir: dir.to_path_buf(), tokenizer, loaded: None })
    }

    /// The tokenizer, to read the text of `input`.
    ///
    /// # Errors
    /// [`NlpError::NoTokenizer`] naming the folder and `input` when the folder has none.
    pub fn tokenizer(&self, input: &Path) -> Result<&TextTokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| NlpError::NoTokenizer {
            folder: self.dir.clone(),
            input: input.to_path_buf(),
        })
    }

    /// The folder with its tokenizer truncating to `max_length` instead.
    ///
    /// # Errors
    /// As [`TextTokenizer::with_max_length`].
    pub fn with_max_length(self, max_length: usize) -> Result<Self> {
        let tokenizer = match self.tokenizer {
            Some(t) => Some(t.with_max_length(max_length)?),
            None => None,
        };
        Ok(Self { tokenizer, ..self })
    }

    /// The padding id: the tokenizer's, 0 without a tokenizer (padding is masked).
    pub fn pad_id(&self) -> u32 {
        self.tokenizer.as_ref().map_or(0, TextTokenizer::pad_id)
    }

    /// The folder's encoder with its pretrained weights.
    ///
    /// # Errors
    /// As [`load_encoder`].
    pub fn load_backbone<B: Backend>(&mut self, device: &B::Device) -> Result<NlpBackbone<B>> {
        let (backbone, mut folder, _) = load_encoder::<B>(&self.dir, device)?;
        folder.weights = folder.head_weights();
        self.loaded = Some(folder);
        Ok(backbone)
    }

    /// What [`TextFolder::load_backbone`] read besides the encoder.
    ///
    /// # Panics
    /// When the encoder was not loaded yet: expected a call of `load_backbone` first.
    pub fn loaded(&self) -> &EncoderFolder {
        self.loaded.as_ref().expect("expected the encoder to be loaded before its task layers")
    }
}

/// The `labels` of a checkpoint's `method` metadata.
///
/// # Errors
/// [`pet_core::PetError::Format`] naming `source` when they are absent or malformed.
pub fn labels_from_metadata(metadata: &serde_json::Value, source: &Path) -> Result<LabelSet> {
    let value = metadata
        .get("labels")
        .cloned()
        .ok_or_else(|| pet_core::PetError::format(source, "metadata `method` has no `labels`"))?;
    serde_json::from_value(value).map_err(|e| {
        pet_core::PetError::format(source, format!("metadata `method.labels`: {e}")).into()
    })
}

/// A task's options and labels as a checkpoint's `method` metadata records them.
pub fn metadata_of<O: serde::Serialize>(
    options: &O,
    labels: Option<&LabelSet>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut map = match serde_json::to_value(options) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    if let Some(labels) = labels {
        map.insert("labels".into(), serde_json::json!(labels));
    }
    map
}
