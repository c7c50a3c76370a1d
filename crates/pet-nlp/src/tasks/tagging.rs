//! Sequence labeling (NER, SRL): words are tokenized into sub-words, each word is labelled at its
//! first sub-word (BIO / IOB2 tags), trained with cross-entropy or a CRF, and scored with
//! seqeval's span F1. Words cut off by truncation are predicted `O`.

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use pet_core::Backbone;
use pet_core::delta::set::DeltaSet;
use pet_core::metrics::span_scores;
use pet_core::train::{Evaluation, TrainTask};

use crate::backbone::NlpBackbone;
use crate::batch::PaddedBatch;
use crate::heads::TokenClassificationHead;
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
    /// Pads `rows` into batches of `size`, in order.
    pub fn chunk(rows: &[TaggedRow], size: usize, pad_id: u32) -> Vec<Self> {
        rows.chunks(size.max(1))
            .map(|chunk| {
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
#[derive(Module, Debug)]
pub struct SequenceTagger<B: Backend> {
    /// The encoder.
    pub backbone: NlpBackbone<B>,
    /// The deltas.
    pub delta: DeltaSet<B>,
    /// The head.
    pub head: TokenClassificationHead<B>,
}

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
        let encoded = self.backbone.forward_with(batch.inputs.to_input(&device), &self.delta);
        (self.head.emissions(encoded, first), mask)
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
        let batch = &TaggingBatch::chunk(&[row], 4, 0)[0];
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
        assert_eq!(TaggingBatch::chunk(&[row], 4, 0)[0].gold, vec![vec![1, 0, 0]]);
    }
}
