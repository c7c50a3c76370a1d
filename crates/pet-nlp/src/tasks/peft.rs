//! The task head of a PEFT adapter folder over a model folder: the `modules_to_save` PEFT
//! stored beside the adapter (`classifier`, RoBERTa's `classifier.dense` +
//! `classifier.out_proj`, DeBERTa's `classifier`, `qa_outputs`), or, when it stored none, the
//! task layers of a task checkpoint model folder (`BertForSequenceClassification`,
//! `DebertaV2ForSequenceClassification`, ...). PEFT saves only the listed modules, not DeBERTa's
//! ContextPooler, so with saved modules the pooler (`pooler.*`) still comes from the folder, as
//! the adapter's base model had it.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::TensorData;
use burn::tensor::backend::Backend;
use pet_core::blocks::hf_keys::{BertKeys, load_hf_state, to_state};
use pet_core::peft::PeftAdapter;
use pet_core::task::restore::peft_virtual_tokens;

use crate::backbone::NlpBackbone;
use crate::error::{NlpError, Result};
use crate::folder::EncoderFolder;

/// The weights a PEFT task model's head loads from, and the file(s) they come from.
#[derive(Clone, Debug)]
pub struct PeftHead {
    /// Head weights keyed as in the base model.
    pub tensors: BTreeMap<String, TensorData>,
    /// Where they come from, for messages.
    pub file: String,
}

impl PeftHead {
    /// The head of the adapter at `adapter` (its saved modules `saved`) over `folder`.
    pub fn of(saved: BTreeMap<String, TensorData>, adapter: &Path, folder: &EncoderFolder) -> Self {
        let file = match saved.is_empty() {
            true => folder.weights_file(),
            false => format!(
                "{} (over {})",
                adapter.join(pet_core::peft::WEIGHTS_FILE).display(),
                folder.weights_file()
            ),
        };
        let mut tensors = folder.head_weights();
        if !saved.is_empty() {
            tensors.retain(|key, _| key.starts_with("pooler."));
            tensors.extend(saved);
        }
        Self { tensors, file }
    }

    /// Rows of the output layer `key` (`[out, in]` as PyTorch stores it).
    ///
    /// # Errors
    /// [`NlpError::NoTaskHead`] when neither the adapter nor the folder holds it.
    pub fn outputs(&self, key: &str) -> Result<usize> {
        let data = self.tensors.get(key).ok_or_else(|| NlpError::NoTaskHead {
            file: self.file.clone(),
            key: key.to_string(),
        })?;
        Ok(data.shape[0])
    }

    /// `head` with these weights loaded.
    ///
    /// # Errors
    /// When a weight is missing, unexpected or of another shape.
    pub fn load<B: Backend, M: Module<B>>(&self, head: M) -> Result<M> {
        Ok(load_hf_state(head, &self.tensors, &self.file, "", &|_| false)?.0)
    }
}

/// The longest input a PEFT model takes: the backbone's positions
/// ([`NlpBackbone::max_positions`]) less the adapter's virtual tokens, which use positions too,
/// capped at 512.
pub fn peft_max_length<B: Backend>(backbone: &NlpBackbone<B>, adapter: &PeftAdapter) -> usize {
    backbone.max_positions().saturating_sub(peft_virtual_tokens(adapter)).min(512)
}

/// `head`'s parameters as a Hugging Face state dict: keys renamed, linear weights `[out, in]`.
///
/// # Errors
/// When a weight cannot be transposed.
pub fn hf_head_weights<B: Backend, M: Module<B>>(head: &M) -> Result<BTreeMap<String, TensorData>> {
    Ok(to_state::<B, M>(head, &BertKeys)?)
}
