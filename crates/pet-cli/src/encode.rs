//! `pet encode`: run an encoder (optionally with a delta) over a JSONL file and write
//! `last_hidden_state` `[n, max_len, hidden]` (f32, padded to the longest row),
//! `attention_mask` `[n, max_len]` (i64) and, when the model has a pooler, `pooler_output`
//! `[n, hidden]` to a safetensors file. Each input line is `{"text": ..., "text_pair": ...}`
//! (tokenized with the model's tokenizer) or pre-tokenized `{"input_ids": [...],
//! "attention_mask": [...], "token_type_ids": [...]}`. With a prompt delta the prompt positions
//! come first and count in `attention_mask`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::TensorData;
use burn::tensor::backend::AutodiffBackend;
use pet_core::Backbone;
use pet_core::safetensors_io::{TensorFile, write_tensor_file};
use pet_nlp::batch::PaddedBatch;
use pet_nlp::load_encoder;
use pet_nlp::tokenize::{Encoded, TextTokenizer};
use serde_json::Value;

use crate::device::BackendJob;
use crate::restore::restore_deltas;
use crate::train::resolve_folder;

const BATCH: usize = 32;

/// Encode a file.
#[derive(Clone, Debug)]
pub struct EncodeJob {
    /// Model folder or asset name.
    pub model: String,
    /// Input JSONL.
    pub input: PathBuf,
    /// Output safetensors.
    pub output: PathBuf,
    /// A pet delta checkpoint or a PEFT adapter folder.
    pub delta: Option<PathBuf>,
    /// Truncation of tokenized texts.
    pub max_length: usize,
}

fn ids(value: &Value, key: &str) -> Option<Result<Vec<u32>>> {
    let items = value.get(key)?;
    Some(
        items
            .as_array()
            .and_then(|a| {
                a.iter().map(|v| v.as_u64().map(|v| v as u32)).collect::<Option<Vec<_>>>()
            })
            .with_context(|| format!("`{key}` must be a list of non-negative integers")),
    )
}

/// One input line as tokens and, for pre-tokenized lines, its own attention mask.
fn parse_line(
    line: &str,
    tokenizer: Option<&TextTokenizer>,
) -> Result<(Encoded, Option<Vec<u32>>)> {
    let value: Value = serde_json::from_str(line).context("not a JSON object")?;
    if let Some(input_ids) = ids(&value, "input_ids") {
        let input_ids = input_ids?;
        let types =
            ids(&value, "token_type_ids").transpose()?.unwrap_or_else(|| vec![0; input_ids.len()]);
        let mask = ids(&value, "attention_mask").transpose()?;
        if types.len() != input_ids.len()
            || mask.as_ref().is_some_and(|m| m.len() != input_ids.len())
        {
            bail!("`input_ids`, `attention_mask` and `token_type_ids` must have one length");
        }
        let n = input_ids.len();
        return Ok((
            Encoded {
                input_ids,
                token_type_ids: types,
                offsets: vec![(0, 0); n],
                word_ids: vec![None; n],
            },
            mask,
        ));
    }
    let text =
        value.get("text").and_then(Value::as_str).context("expected `text` or `input_ids`")?;
    let pair = value.get("text_pair").and_then(Value::as_str);
    let tokenizer =
        tokenizer.context("the model folder has no tokenizer.json to tokenize `text`")?;
    Ok((tokenizer.encode(text, pair)?, None))
}

impl BackendJob for EncodeJob {
    type Output = usize;

    fn run<B: AutodiffBackend>(self, device: B::Device, _backend: &str) -> Result<usize> {
        let model_dir = resolve_folder(&self.model)?;
        let tokenizer_path = model_dir.join("tokenizer.json");
        let tokenizer = match tokenizer_path.is_file() {
            true => Some(TextTokenizer::from_file(&tokenizer_path, self.max_length)?),
            false => None,
        };
        let text = std::fs::read_to_string(&self.input)
            .with_context(|| format!("reading {}", self.input.display()))?;
        let mut rows = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let row = parse_line(line, tokenizer.as_ref())
                .with_context(|| format!("{}:{}", self.input.display(), index + 1))?;
            rows.push(row);
        }
        if rows.is_empty() {
            bail!("{}: no input line", self.input.display());
        }
        let (backbone, _, _) = load_encoder::<B::InnerBackend>(&model_dir, &device)?;
        let (backbone, delta) = match &self.delta {
            Some(path) => restore_deltas(backbone, path, &device)?,
            None => {
                let none = pet_core::delta::set::DeltaSpec::none().build(&backbone, &device)?;
                (backbone, none)
            }
        };
        let pad = tokenizer.as_ref().map_or(0, TextTokenizer::pad_id);
        let hidden_size = backbone.shape().hidden_size;
        let mut outputs = Vec::new();
        for chunk in rows.chunks(BATCH) {
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
        let max_len = outputs.iter().map(|o| o.hidden.dims()[1]).max().unwrap_or(0);
        let n = rows.len();
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
        write_tensor_file(&self.output, &file)?;
        Ok(n)
    }
}
