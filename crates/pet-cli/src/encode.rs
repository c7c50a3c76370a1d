//! `pet encode`: run an encoder (optionally with a delta) over a JSONL file and write
//! `last_hidden_state` `[n, max_len, hidden]` (f32, padded to the longest row),
//! `attention_mask` `[n, max_len]` (i64) and, when the model has a pooler, `pooler_output`
//! `[n, hidden]` to a safetensors file. Each input line is `{"text": ..., "text_pair": ...}`
//! (tokenized with the model's tokenizer) or pre-tokenized `{"input_ids": [...],
//! "attention_mask": [...], "token_type_ids": [...]}`. With a prompt delta the prompt positions
//! come first and count in `attention_mask`. The file is streamed and run batch by batch; every
//! row is checked against what the model takes with its delta (vocabulary, token types,
//! positions) and a bad row is an error naming its line.

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::TensorData;
use burn::tensor::backend::AutodiffBackend;
use pet_core::output::{Output, OutputKind};
use pet_core::safetensors_io::{TensorFile, tensor_file_bytes};
use pet_core::task::restore::restore_deltas;
use pet_core::{Backbone, PetError};
use pet_nlp::batch::{PaddedBatch, check_row};
use pet_nlp::input::{JsonLine, json_lines};
use pet_nlp::tokenize::{Encoded, TextTokenizer};
use pet_nlp::{NlpError, load_encoder};

use crate::device::BackendJob;
use crate::train::resolve_folder;

const BATCH: usize = 32;

/// Encode a file.
#[derive(Clone, Debug)]
pub struct EncodeJob {
    /// Model folder or asset name.
    pub model: String,
    /// Input JSONL.
    pub input: PathBuf,
    /// Output safetensors; never one of the inputs.
    pub output: PathBuf,
    /// Replace an existing output file.
    pub overwrite: bool,
    /// A pet delta checkpoint or a PEFT adapter folder.
    pub delta: Option<PathBuf>,
    /// Truncation of tokenized texts.
    pub max_length: usize,
}

impl BackendJob for EncodeJob {
    type Output = usize;

    fn run<B: AutodiffBackend>(self, device: B::Device, _backend: &str) -> Result<usize> {
        let model_dir = resolve_folder(&self.model)?;
        let mut inputs = vec![model_dir.as_path(), self.input.as_path()];
        inputs.extend(self.delta.as_deref());
        let output = Output::checked(&self.output, OutputKind::File, self.overwrite, &inputs)?;
        let (backbone, _, _) = load_encoder::<B::InnerBackend>(&model_dir, &device)?;
        let (backbone, delta) = match &self.delta {
            Some(path) => restore_deltas(backbone, path, &device)?,
            None => {
                let none = pet_core::delta::set::DeltaSpec::none().build(&backbone, &device)?;
                (backbone, none)
            }
        };
        // Every row is checked against what the model takes with its delta before it is run.
        let limits = backbone.input_limits(&delta);
        let tokenizer_path = model_dir.join("tokenizer.json");
        let tokenizer = match tokenizer_path.is_file() {
            true => Some(TextTokenizer::from_file(&tokenizer_path, self.max_length)?),
            false => None,
        };
        let pad = tokenizer.as_ref().map_or(0, TextTokenizer::pad_id);
        let input = &self.input;
        // `max_length` truncates text lines only: it is checked against the model's positions
        // at the first of them.
        let mut checked_max_length = false;
        let mut row = |line: JsonLine| -> Result<(Encoded, Option<Vec<u32>>)> {
            if let Some(ids) = line.token_ids(input, Some(&limits))? {
                check_row(Some(&limits), &ids.encoded, input, line.line)?;
                return Ok((ids.encoded, ids.attention_mask));
            }
            let text = line
                .text("text")
                .ok_or_else(|| line.error(input, "expected `text` or `input_ids`"))?;
            let tokenizer = tokenizer.as_ref().ok_or_else(|| NlpError::NoTokenizer {
                folder: model_dir.clone(),
                input: input.clone(),
            })?;
            if !checked_max_length {
                limits.check_max_length(self.max_length)?;
                checked_max_length = true;
            }
            let encoded = tokenizer.encode(text, line.text("text_pair"))?;
            check_row(Some(&limits), &encoded, input, line.line)?;
            Ok((encoded, None))
        };
        let hidden_size = backbone.shape().hidden_size;
        let mut outputs = Vec::new();
        let mut lines = json_lines(input, Some(&limits))?;
        loop {
            // Batch by batch as the file is read.
            let chunk: Vec<(Encoded, Option<Vec<u32>>)> =
                lines.by_ref().take(BATCH).map(|line| row(line?)).collect::<Result<_>>()?;
            if chunk.is_empty() {
                break;
            }
            let encoded: Vec<&Encoded> = chunk.iter().map(|(e, _)| e).collect();
            let mut batch = PaddedBatch::new(&encoded, pad);
            for (row, (_, mask)) in chunk.iter().enumerate() {
                if let Some(mask) = mask {
                    for (col, &m) in mask.iter().enumerate() {
                        batch.attention_mask[row * batch.seq + col] = m as f32;
                    }
                }
            }
            let out = backbone.forward_with(batch.to_input(&device), &delta);
            outputs.push(out);
        }
        let n: usize = outputs.iter().map(|o| o.hidden.dims()[0]).sum();
        if n == 0 {
            let reason = "the file holds no example".to_string();
            return Err(PetError::EmptyData { path: input.clone(), reason }.into());
        }
        let max_len = outputs.iter().map(|o| o.hidden.dims()[1]).max().unwrap_or(0);
        let mut hidden = vec![0f32; n * max_len * hidden_size];
        let mut mask = vec![0i64; n * max_len];
        let mut pooled = Vec::new();
        let mut row = 0;
        for out in outputs {
            let [b, s, h] = out.hidden.dims();
            let values =
                out.hidden.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default();
            let m = out.mask.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default();
            for i in 0..b {
                let dst = (row + i) * max_len * h;
                hidden[dst..dst + s * h].copy_from_slice(&values[i * s * h..(i + 1) * s * h]);
                for j in 0..s {
                    mask[(row + i) * max_len + j] = m[i * s + j] as i64;
                }
            }
            if let Some(p) = out.pooled {
                pooled.extend(p.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default());
            }
            row += b;
        }
        let mut file = TensorFile::default();
        file.tensors
            .insert("last_hidden_state".into(), TensorData::new(hidden, [n, max_len, hidden_size]));
        file.tensors.insert("attention_mask".into(), TensorData::new(mask, [n, max_len]));
        if pooled.len() == n * hidden_size {
            file.tensors.insert("pooler_output".into(), TensorData::new(pooled, [n, hidden_size]));
        }
        output.write(&tensor_file_bytes(&self.output, &file)?)?;
        Ok(n)
    }
}
