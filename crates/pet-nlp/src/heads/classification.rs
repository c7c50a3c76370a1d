//! Sequence classification as P-Tuning v2 does it (`BertPrefixForSequenceClassification`):
//! the pooler's output (or, for a backbone without pooler, the first position's hidden state),
//! dropout, then a linear layer to the classes. With `dense`, transformers'
//! `RobertaClassificationHead` instead: the first position's hidden state, dropout, a dense layer
//! with tanh, dropout, then the linear layer (`out_proj`), to read RoBERTa task weights.

use std::collections::BTreeMap;

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Tensor, TensorData, backend::Backend};
use pet_core::EncoderOutput;

/// Head settings.
#[derive(Config, Debug)]
pub struct ClassificationHeadConfig {
    /// Hidden size of the backbone.
    pub hidden_size: usize,
    /// Number of classes.
    pub num_labels: usize,
    /// Dropout before the classifier (the backbone's hidden dropout in P-Tuning v2).
    #[config(default = 0.1)]
    pub dropout: f64,
    /// RoBERTa's head: a `hidden -> hidden` dense layer with tanh on the first position.
    #[config(default = false)]
    pub dense: bool,
}

/// `classifier(dropout(pooled))`, or `classifier(dropout(tanh(dense(dropout(first)))))`.
#[derive(Module, Debug)]
pub struct ClassificationHead<B: Backend> {
    /// Dropout on the pooled features.
    pub dropout: Dropout,
    /// `hidden -> hidden`, RoBERTa's `classifier.dense`.
    pub dense: Option<Linear<B>>,
    /// `hidden -> num_labels` (RoBERTa's `classifier.out_proj`).
    pub classifier: Linear<B>,
}

/// A classification head's weights as transformers names them, renamed to [`ClassificationHead`]'s
/// parameters, and whether they hold RoBERTa's dense layer: BERT's `classifier.*` stays,
/// RoBERTa's `classifier.dense.*` becomes `dense.*` and `classifier.out_proj.*` `classifier.*`.
pub fn from_hf_head_keys(
    weights: BTreeMap<String, TensorData>,
) -> (BTreeMap<String, TensorData>, bool) {
    let dense = weights.keys().any(|k| k.starts_with("classifier.dense."));
    let renamed = weights
        .into_iter()
        .map(|(key, value)| {
            let key = match (
                key.strip_prefix("classifier.dense."),
                key.strip_prefix("classifier.out_proj."),
            ) {
                (Some(rest), _) => format!("dense.{rest}"),
                (_, Some(rest)) => format!("classifier.{rest}"),
                _ => key,
            };
            (key, value)
        })
        .collect();
    (renamed, dense)
}

impl ClassificationHeadConfig {
    /// Builds the head with PyTorch's default `Linear` init.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClassificationHead<B> {
        ClassificationHead {
            dropout: DropoutConfig::new(self.dropout).init(),
            dense: self
                .dense
                .then(|| LinearConfig::new(self.hidden_size, self.hidden_size).init(device)),
            classifier: LinearConfig::new(self.hidden_size, self.num_labels).init(device),
        }
    }
}

impl<B: Backend> ClassificationHead<B> {
    /// Class logits.
    ///
    /// # Shapes
    /// - output: `[batch, num_labels]`
    pub fn forward(&self, encoded: EncoderOutput<B>) -> Tensor<B, 2> {
        let first = || {
            let [batch, _, hidden] = encoded.hidden.dims();
            encoded.hidden.clone().narrow(1, 0, 1).reshape([batch, hidden])
        };
        let features = match (&self.dense, encoded.pooled.clone()) {
            (Some(dense), _) => dense.forward(self.dropout.forward(first())).tanh(),
            (None, Some(pooled)) => pooled,
            (None, None) => first(),
        };
        self.classifier.forward(self.dropout.forward(features))
    }
}
