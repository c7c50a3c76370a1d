//! Sequence labeling (NER, SRL): words are tokenized into sub-words, each word is labelled at its
//! first sub-word (BIO / IOB2 tags), trained with cross-entropy or a CRF, and scored with
//! seqeval's span F1. Words cut off by truncation are predicted `O`. [`Tagging`] is the task as
//! `pet train`, `pet eval` and `pet predict` run it: CoNLL files (`token tag` lines) to train
//! and score; prediction lines `{"tokens": [...]}` or `{"text"}` (split on whitespace) give
//! `{"tokens", "tags", "logits": [words, tags]}`, logits read at each word's first sub-word
//! (truncated words get the `O` tag and no logits row). Pre-tokenized JSON lines (`input_ids`
//! with `word_ids`, optional `attention_mask` and `token_type_ids`; `tags` per word to train or
//! score) need no tokenizer; their predictions have no `tokens`.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use pet_core::metrics::span_scores;
use pet_core::task::{Predictions, SplitRole};
use pet_core::train::{Evaluation, TrainTask};
use pet_core::{Backbone, InputLimits};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::backbone::NlpBackbone;
use crate::batch::{PaddedBatch, check_row};
use crate::data::{LabelSet, conll_sentences};
use crate::error::{NlpError, Result};
use crate::folder::EncoderFolder;
use crate::heads::{TokenClassificationHead, TokenClassificationHeadConfig};
use crate::input::{JsonLine, is_pretokenized, json_lines};
use crate::tasks::model::TaskModel;
use crate::tasks::peft::{PeftHead, hf_head_weights};
use crate::tasks::text::{TextKind, TextKindOn, TextOptions, TextTask, default_max_length};
use crate::tokenize::Encoded;

/// One tokenized sentence with its tags.
#[derive(Clone, Debug)]
pub struct TaggedRow {
    /// Sub-word encoding of the words.
    pub encoded: Encoded,
    /// Token index of the first sub-word of each word that survived truncation.
    pub first_subword: Vec<usize>,
    /// Tag index of every word (all words, truncated ones included).
    pub tags: Vec<usize>,
}

impl TaggedRow {
    /// Aligns `tags` (one per word) to `encoded`'s sub-words.
    pub fn new(encoded: Encoded, tags: Vec<usize>) -> Self {
        let mut first_subword = Vec::new();
        let mut last = None;
        for (token, word) in encoded.word_ids.iter().enumerate() {
            if let Some(word) = word {
                if last != Some(*word) && *word as usize == first_subword.len() {
                    first_subword.push(token);
                }
                last = Some(*word);
            }
        }
        Self { encoded, first_subword, tags }
    }
}

/// Padded sentences, their first sub-words and tags.
#[derive(Clone, Debug)]
pub struct TaggingBatch {
    /// Padded token ids, types and mask.
    pub inputs: PaddedBatch,
    /// Words per row that survived truncation.
    pub lengths: Vec<usize>,
    /// Longest row in words.
    pub words: usize,
    /// `[batch * words]` first sub-word token index (0 on padding).
    pub first_subword: Vec<i64>,
    /// `[batch * words]` tag index (0 on padding).
    pub tags: Vec<i64>,
    /// `[batch * words]` 1.0 for real words.
    pub mask: Vec<f32>,
    /// Every word's gold tag index, truncated words included, per row.
    pub gold: Vec<Vec<usize>>,
}

impl TaggingBatch {
    /// Pads the rows `items` of `rows` into batches of `size`, in order.
    pub fn chunk(rows: &[TaggedRow], items: &[usize], size: usize, pad_id: u32) -> Vec<Self> {
        items
            .chunks(size.max(1))
            .map(|chunk| {
                let chunk: Vec<&TaggedRow> = chunk.iter().map(|&i| &rows[i]).collect();
                let words = chunk.iter().map(|r| r.first_subword.len()).max().unwrap_or(0).max(1);
                let n = chunk.len() * words;
                let (mut first, mut tags, mut mask) = (vec![0i64; n], vec![0i64; n], vec![0f32; n]);
                for (row, r) in chunk.iter().enumerate() {
                    for (word, &token) in r.first_subword.iter().enumerate() {
                        first[row * words + word] = token as i64;
                        tags[row * words + word] = r.tags[word] as i64;
                        mask[row * words + word] = 1.0;
                    }
                }
                Self {
                    inputs: PaddedBatch::new(
                        &chunk.iter().map(|r| &r.encoded).collect::<Vec<_>>(),
                        pad_id,
                    ),
                    lengths: chunk.iter().map(|r| r.first_subword.len()).collect(),
                    words,
                    first_subword: first,
                    tags,
                    mask,
                    gold: chunk.iter().map(|r| r.tags.clone()).collect(),
                }
            })
            .collect()
    }
}

/// Backbone + delta + token classification head.
pub type SequenceTagger<B> = TaskModel<B, TokenClassificationHead<B>>;

impl<B: Backend> SequenceTagger<B> {
    /// Word-level tag scores and the word mask of a batch.
    ///
    /// # Shapes
    /// - output: `[batch, words, num_labels]` and `[batch, words]`
    pub fn emissions(&self, batch: &TaggingBatch) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let device = self.head.classifier.weight.device();
        let shape = [batch.inputs.batch, batch.words];
        let first = Tensor::<B, 2, Int>::from_data(
            TensorData::new(batch.first_subword.clone(), shape),
            &device,
        );
        let mask = Tensor::<B, 2>::from_data(TensorData::new(batch.mask.clone(), shape), &device);
        (self.head.emissions(self.encode(&batch.inputs, &device), first), mask)
    }

    /// Predicted tag index of every word, truncated words as `outside` (the `O` tag's index).
    pub fn predict(&self, batches: &[TaggingBatch], outside: usize) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        for batch in batches {
            let (emissions, mask) = self.emissions(batch);
            let decoded = self.head.decode(emissions, mask, &batch.lengths);
            for (mut tags, gold) in decoded.into_iter().zip(&batch.gold) {
                tags.resize(gold.len(), outside);
                out.push(tags);
            }
        }
        out
    }

    /// seqeval span F1 (the selection score), precision and recall, micro over types.
    pub fn evaluate(&self, batches: &[TaggingBatch], names: &[String]) -> Evaluation {
        let outside = names.iter().position(|n| n == "O").unwrap_or(0);
        let name = |t: &usize| names.get(*t).cloned().unwrap_or_else(|| "O".to_string());
        let predicted: Vec<Vec<String>> =
            self.predict(batches, outside).iter().map(|r| r.iter().map(name).collect()).collect();
        let gold: Vec<Vec<String>> = batches
            .iter()
            .flat_map(|b| b.gold.iter())
            .map(|r| r.iter().map(name).collect())
            .collect();
        let scores = span_scores(&gold, &predicted);
        let metrics = [
            ("f1".to_string(), scores.micro.f1),
            ("precision".to_string(), scores.micro.precision),
            ("recall".to_string(), scores.micro.recall),
        ];
        Evaluation { score: scores.micro.f1, metrics: metrics.into() }
    }
}

impl<B: AutodiffBackend> TrainTask<B> for SequenceTagger<B>
where
    SequenceTagger<B>: AutodiffModule<B>,
{
    type Batch = TaggingBatch;

    fn loss(&self, batch: &TaggingBatch) -> Tensor<B, 1> {
        let (emissions, mask) = self.emissions(batch);
        let tags = Tensor::<B, 2, Int>::from_data(
            TensorData::new(batch.tags.clone(), [batch.inputs.batch, batch.words]),
            &mask.device(),
        );
        self.head.loss(emissions, tags, mask)
    }

    fn batch_size(batch: &TaggingBatch) -> usize {
        batch.inputs.batch
    }
}

/// The job options of tagging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaggingOptions {
    /// Tokens per input, special tokens included.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// A CRF over the word-level tag scores.
    #[serde(default)]
    pub crf: bool,
}

impl Default for TaggingOptions {
    fn default() -> Self {
        Self { max_length: default_max_length(), crf: false }
    }
}

impl TextOptions for TaggingOptions {
    fn max_length(&self) -> usize {
        self.max_length
    }

    fn for_peft(max_length: usize) -> Self {
        Self { max_length, ..Self::default() }
    }
}

/// Sequence labeling as a [`Task`](pet_core::task::Task): the model folder's tokenizer, the
/// options and the tag set.
pub type Tagging = TextTask<TaggingKind>;

/// The kind of [`Tagging`].
#[derive(Clone, Copy, Debug)]
pub struct TaggingKind;

/// The words of a prediction line: `{"tokens": [...]}`, or `{"text"}` split on whitespace.
fn words_of(line: &JsonLine, path: &Path) -> Result<Vec<String>> {
    let tokens: Vec<String> = match (line.value.get("tokens"), line.text("text")) {
        (Some(Value::Array(items)), _) => items
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| line.error(path, "`tokens` must hold strings"))?,
        (None, Some(text)) => text.split_whitespace().map(str::to_string).collect(),
        _ => return Err(line.error(path, "expected `tokens` (a list of strings) or `text`")),
    };
    if tokens.is_empty() {
        return Err(line.error(path, "no token"));
    }
    Ok(tokens)
}

/// A pre-tokenized sentence: `input_ids` with `word_ids` (and optional `attention_mask`,
/// `token_type_ids`) checked against the model's limits, and its word-level `tags` (`None`
/// when the line has none; otherwise one per word at least).
fn ids_of(
    line: &JsonLine,
    path: &Path,
    limits: Option<&InputLimits>,
) -> Result<(Encoded, Option<Vec<String>>)> {
    let ids =
        line.token_ids(path, limits)?.ok_or_else(|| line.error(path, "expected `input_ids`"))?;
    let encoded = ids.unpadded(path, line.line)?;
    check_row(limits, &encoded, path, line.line)?;
    if encoded.word_ids.iter().all(Option::is_none) {
        return Err(line.error(path, "tagging needs `word_ids` beside `input_ids`"));
    }
    let tags = match line.value.get("tags") {
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|t| t.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| line.error(path, "`tags` must hold strings"))?,
        ),
        _ => None,
    };
    let words = word_count(&encoded);
    if let Some(tags) = &tags
        && tags.len() < words
    {
        let reason = format!("{} `tags` for the {words} words of `word_ids`", tags.len());
        return Err(line.error(path, reason));
    }
    Ok((encoded, tags))
}

/// Number of words of a pre-tokenized sentence: one past its largest word index.
fn word_count(encoded: &Encoded) -> usize {
    encoded.word_ids.iter().flatten().max().map_or(0, |&w| w as usize + 1)
}

impl TextKind for TaggingKind {
    const NAME: &'static str = "tagging";
    const PEFT_TASK_TYPE: &'static str = "TOKEN_CLS";
    const LABELLED: bool = true;
    type Options = TaggingOptions;
}

impl<B: AutodiffBackend> TextKindOn<B> for TaggingKind {
    type Split = Vec<TaggedRow>;
    type Batch = TaggingBatch;
    type Head = TokenClassificationHead<B>;

    fn read_split(
        task: &mut Tagging,
        path: &Path,
        role: SplitRole,
        limit: Option<usize>,
    ) -> Result<Vec<TaggedRow>> {
        let limits = task.folder.limits();
        let take = limit.unwrap_or(usize::MAX);
        // Each sentence's line, tokens and tags, tokenized as the file is streamed.
        let mut sentences: Vec<(usize, Encoded, Vec<String>)> = Vec::new();
        if is_pretokenized(path) {
            for (index, line) in json_lines(path, limits)?.take(take).enumerate() {
                let line = line?;
                let (encoded, tags) = ids_of(&line, path, limits)?;
                let tags = tags.ok_or_else(|| NlpError::example(path, index + 1, "no `tags`"))?;
                sentences.push((line.line, encoded, tags));
            }
        } else {
            let tokenizer = task.folder.tokenizer(path)?;
            for sentence in conll_sentences(path, 1)?.take(take) {
                let (line, sentence) = sentence?;
                let encoded = tokenizer.encode_words(&sentence.tokens)?;
                check_row(limits, &encoded, path, line)?;
                sentences.push((line, encoded, sentence.tags));
            }
        }
        if role == SplitRole::Train {
            task.labels = LabelSet::new(sentences.iter().flat_map(|s| s.2.iter().cloned()));
        }
        let mut rows = Vec::with_capacity(sentences.len());
        for (index, (_, encoded, tags)) in sentences.into_iter().enumerate() {
            let tags = tags
                .iter()
                .map(|t| {
                    task.labels.index_of(t).ok_or_else(|| {
                        let reason = format!("tag `{t}` is not among the training tags");
                        NlpError::example(path, index + 1, reason)
                    })
                })
                .collect::<Result<Vec<usize>>>()?;
            let row = TaggedRow::new(encoded, tags);
            if row.first_subword.is_empty() {
                let reason = "no word survives truncation to max_length";
                return Err(NlpError::example(path, index + 1, reason));
            }
            rows.push(row);
        }
        Ok(rows)
    }

    fn split_len(split: &Vec<TaggedRow>) -> usize {
        split.len()
    }

    fn batches(
        task: &Tagging,
        split: &Vec<TaggedRow>,
        items: &[usize],
        size: usize,
    ) -> Vec<TaggingBatch> {
        TaggingBatch::chunk(split, items, size, task.folder.pad_id())
    }

    fn head(
        task: &Tagging,
        backbone: &NlpBackbone<B>,
        device: &B::Device,
    ) -> TokenClassificationHead<B> {
        TokenClassificationHeadConfig::new(backbone.shape().hidden_size, task.labels.len())
            .with_crf(task.options.crf)
            .init(device)
    }

    fn evaluate(
        task: &Tagging,
        model: &SequenceTagger<B::InnerBackend>,
        _split: &Vec<TaggedRow>,
        batches: &[TaggingBatch],
    ) -> Evaluation {
        model.evaluate(batches, task.labels.names())
    }

    fn predict(
        task: &Tagging,
        model: &SequenceTagger<B::InnerBackend>,
        input: &Path,
        batch_size: usize,
        out: &mut dyn Predictions,
    ) -> Result<usize> {
        let outside = task.labels.index_of("O").unwrap_or(0);
        let limits = task.folder.limits();
        let tokenizer = match is_pretokenized(input) {
            true => None,
            false => Some(task.folder.tokenizer(input)?),
        };
        let mut input_lines = json_lines(input, limits)?;
        let mut pushed = 0;
        // Batch by batch as the file is read: a batch of sentences and its predictions are held
        // at a time.
        loop {
            // Each sentence's words (none for pre-tokenized lines), word count and tokens.
            let mut sentences: Vec<(Vec<String>, usize)> = Vec::new();
            let mut rows: Vec<TaggedRow> = Vec::new();
            for line in input_lines.by_ref().take(batch_size.max(1)) {
                let line = line?;
                let (words, encoded) = match tokenizer {
                    None => (Vec::new(), ids_of(&line, input, limits)?.0),
                    Some(tokenizer) => {
                        let words = words_of(&line, input)?;
                        let encoded = tokenizer.encode_words(&words)?;
                        check_row(limits, &encoded, input, line.line)?;
                        (words, encoded)
                    }
                };
                let n = match words.is_empty() {
                    true => word_count(&encoded),
                    false => words.len(),
                };
                rows.push(TaggedRow::new(encoded, vec![outside; n]));
                sentences.push((words, n));
            }
            if rows.is_empty() {
                break;
            }
            let items: Vec<usize> = (0..rows.len()).collect();
            let batches = TaggingBatch::chunk(&rows, &items, rows.len(), task.folder.pad_id());
            let mut sentence = 0;
            for batch in &batches {
                let (emissions, mask) = model.emissions(batch);
                let [_, words, classes] = emissions.dims();
                let scores = emissions
                    .clone()
                    .into_data()
                    .convert::<f32>()
                    .into_vec::<f32>()
                    .unwrap_or_default();
                let decoded = model.head.decode(emissions, mask, &batch.lengths);
                for (row, (mut tags, &length)) in
                    decoded.into_iter().zip(&batch.lengths).enumerate()
                {
                    let (tokens, words_in_sentence) = &sentences[sentence];
                    tags.resize(*words_in_sentence, outside);
                    let logits: Vec<&[f32]> = (0..length)
                        .map(|w| {
                            &scores[(row * words + w) * classes..(row * words + w + 1) * classes]
                        })
                        .collect();
                    let tags: Vec<&str> =
                        tags.iter().map(|&t| task.labels.name(t).unwrap_or("O")).collect();
                    let line = match tokens.is_empty() {
                        true => json!({"tags": tags, "logits": logits}),
                        false => json!({"tokens": tokens, "tags": tags, "logits": logits}),
                    };
                    out.push(line)?;
                    pushed += 1;
                    sentence += 1;
                }
            }
        }
        Ok(pushed)
    }

    fn peft_head(
        weights: &PeftHead,
        names: &EncoderFolder,
        backbone: &NlpBackbone<B>,
        device: &B::Device,
    ) -> Result<(TokenClassificationHead<B>, LabelSet)> {
        let n = weights.outputs("classifier.weight")?;
        let hidden = backbone.shape().hidden_size;
        let head = weights.load(TokenClassificationHeadConfig::new(hidden, n).init(device))?;
        Ok((head, LabelSet::new(names.label_names(n))))
    }

    /// `classifier`; a CRF has no transformers form and is refused.
    fn peft_saved_head(
        _task: &Tagging,
        model: &SequenceTagger<B::InnerBackend>,
    ) -> Result<(Vec<&'static str>, BTreeMap<String, TensorData>)> {
        if model.head.crf.is_some() {
            let reason = "a CRF head cannot be written as a PEFT adapter (transformers' token \
                          classification has no CRF)";
            return Err(pet_core::PetError::config("crf", reason).into());
        }
        Ok((vec!["classifier"], hf_head_weights(&model.head)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_align_to_the_first_sub_word_of_each_word() {
        // [CLS] new york ##er [SEP]: words 0, 1, 1
        let encoded = Encoded {
            input_ids: vec![2, 5, 6, 7, 3],
            token_type_ids: vec![0; 5],
            offsets: vec![(0, 0); 5],
            word_ids: vec![None, Some(0), Some(1), Some(1), None],
        };
        let row = TaggedRow::new(encoded, vec![1, 2]);
        assert_eq!(row.first_subword, vec![1, 2]);
        let batch = &TaggingBatch::chunk(&[row], &[0], 4, 0)[0];
        assert_eq!((batch.words, batch.lengths.clone()), (2, vec![2]));
        assert_eq!(batch.first_subword, vec![1, 2]);
        assert_eq!(batch.tags, vec![1, 2]);
    }

    #[test]
    fn truncated_words_have_no_first_sub_word() {
        let encoded = Encoded {
            input_ids: vec![2, 5, 3],
            token_type_ids: vec![0; 3],
            offsets: vec![(0, 0); 3],
            word_ids: vec![None, Some(0), None],
        };
        let row = TaggedRow::new(encoded, vec![1, 0, 0]);
        assert_eq!(row.first_subword, vec![1]);
        assert_eq!(TaggingBatch::chunk(&[row], &[0], 4, 0)[0].gold, vec![vec![1, 0, 0]]);
    }
}
