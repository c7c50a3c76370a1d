//! Sequence classification (single texts and pairs): the task model, its batches, training loss
//! (cross-entropy) and evaluation (accuracy, macro-F1, MCC).

use burn::module::{AutodiffModule, Module};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use pet_core::Backbone;
use pet_core::delta::set::DeltaSet;
use pet_core::metrics::classification::{accuracy, macro_f1, matthews_corrcoef};
use pet_core::train::{Evaluation, TrainTask};

use crate::backbone::NlpBackbone;
use crate::batch::PaddedBatch;
use crate::heads::ClassificationHead;
use crate::tokenize::Encoded;

/// Tokenized rows and their class indices.
#[derive(Clone, Debug)]
pub struct ClassificationBatch {
    /// Padded token ids, types and mask.
    pub inputs: PaddedBatch,
    /// Class index of each row.
    pub labels: Vec<usize>,
}

impl ClassificationBatch {
    /// Pads `rows` into batches of `size`, in order.
    pub fn chunk(rows: &[(Encoded, usize)], size: usize, pad_id: u32) -> Vec<Self> {
        rows.chunks(size.max(1))
            .map(|chunk| Self {
                inputs: PaddedBatch::new(&chunk.iter().map(|(e, _)| e).collect::<Vec<_>>(), pad_id),
                labels: chunk.iter().map(|(_, l)| *l).collect(),
            })
            .collect()
    }
}

/// Backbone + delta + classification head.
#[derive(Module, Debug)]
pub struct SequenceClassifier<B: Backend> {
    /// The encoder.
    pub backbone: NlpBackbone<B>,
    /// The deltas.
    pub delta: DeltaSet<B>,
    /// The head.
    pub head: ClassificationHead<B>,
}

impl<B: Backend> SequenceClassifier<B> {
    /// Class logits of a batch.
    ///
    /// # Shapes
    /// - output: `[batch, num_labels]`
    pub fn logits(&self, batch: &PaddedBatch) -> Tensor<B, 2> {
        let device = self.head.classifier.weight.device();
        self.head.forward(self.backbone.forward_with(batch.to_input(&device), &self.delta))
    }

    /// Predicted class indices and logits of every row.
    pub fn predict(&self, batches: &[ClassificationBatch]) -> (Vec<usize>, Vec<Vec<f32>>) {
        let (mut predicted, mut all_logits) = (Vec::new(), Vec::new());
        for batch in batches {
            let logits = self.logits(&batch.inputs);
            let [rows, classes] = logits.dims();
            let values = logits.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default();
            for row in values.chunks(classes).take(rows) {
                let best =
                    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
                predicted.push(best);
                all_logits.push(row.to_vec());
            }
        }
        (predicted, all_logits)
    }

    /// Accuracy (the selection score), macro-F1 and MCC over `batches`.
    pub fn evaluate(&self, batches: &[ClassificationBatch], num_labels: usize) -> Evaluation {
        let (predicted, _) = self.predict(batches);
        let labels: Vec<usize> = batches.iter().flat_map(|b| b.labels.iter().copied()).collect();
        let acc = accuracy(&predicted, &labels);
        let metrics = [
            ("accuracy".to_string(), acc),
            ("macro_f1".to_string(), macro_f1(&predicted, &labels, num_labels)),
            ("mcc".to_string(), matthews_corrcoef(&predicted, &labels)),
        ];
        Evaluation { score: acc, metrics: metrics.into() }
    }
}

impl<B: AutodiffBackend> TrainTask<B> for SequenceClassifier<B>
where
    SequenceClassifier<B>: AutodiffModule<B>,
{
    type Batch = ClassificationBatch;

    fn loss(&self, batch: &ClassificationBatch) -> Tensor<B, 1> {
        let logits = self.logits(&batch.inputs);
        let device = logits.device();
        let labels: Vec<i64> = batch.labels.iter().map(|&l| l as i64).collect();
        let labels =
            Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [batch.labels.len()]), &device);
        CrossEntropyLossConfig::new().init(&device).forward(logits, labels)
    }

    fn batch_size(batch: &ClassificationBatch) -> usize {
        batch.labels.len()
    }
}
