//! Sequence classification as P-Tuning v2 does it (`BertPrefixForSequenceClassification`):
//! the pooler's output (or, for a backbone without pooler, the first position's hidden state),
//! dropout, then a linear layer to the classes. With a [`DensePooling`], a dense layer with an
//! activation on the first position instead of the pooler: the first position's hidden state,
//! dropout, dense, activation, dropout, then the linear layer. That is transformers'
//! `RobertaClassificationHead` (tanh, `classifier.dense` + `classifier.out_proj`) and DeBERTa's
//! `ContextPooler` + classifier (`pooler_hidden_act`, `pooler.dense` + `classifier`, the head of
//! `DebertaV2ForSequenceClassification` and of P-Tuning v2's DeBERTa), so their task weights load
//! through [`from_hf_head_keys`].

use std::collections::BTreeMap;

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Tensor, TensorData, backend::Backend};
use pet_core::EncoderOutput;
use pet_core::blocks::Activation;
use pet_kernels::dropout;
use serde::{Deserialize, Serialize};

/// A dense layer with an activation on the first position, in place of the backbone's pooler.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DensePooling {
    /// After the dense layer: tanh (RoBERTa), `pooler_hidden_act` (DeBERTa).
    pub activation: Activation,
    /// Before the dense layer: the hidden dropout (RoBERTa), `pooler_dropout` (DeBERTa).
    pub dropout: f64,
}

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
    /// A `hidden -> hidden` dense layer with an activation on the first position (RoBERTa's
    /// and DeBERTa's heads); `None` reads the pooler output.
    #[config(default = "None")]
    pub dense: Option<DensePooling>,
}

/// `classifier(dropout(pooled))`, or `classifier(dropout(act(dense(dropout(first)))))`.
#[derive(Module, Debug)]
pub struct ClassificationHead<B: Backend> {
    /// Dropout on the pooled features.
    pub dropout: Dropout,
    /// `hidden -> hidden`, RoBERTa's `classifier.dense`, DeBERTa's `pooler.dense`.
    pub dense: Option<Linear<B>>,
    /// Dropout before `dense`.
    pub dense_dropout: Dropout,
    /// Activation after `dense`.
    #[module(skip)]
    pub activation: Activation,
    /// `hidden -> num_labels` (RoBERTa's `classifier.out_proj`).
    pub classifier: Linear<B>,
}

/// A classification head's weights as transformers names them, renamed to [`ClassificationHead`]'s
/// parameters, and whether they hold a dense layer: BERT's `classifier.*` stays, RoBERTa's
/// `classifier.dense.*` and DeBERTa's `pooler.dense.*` become `dense.*`, RoBERTa's
/// `classifier.out_proj.*` becomes `classifier.*`.
pub fn from_hf_head_keys(
    weights: BTreeMap<String, TensorData>,
) -> (BTreeMap<String, TensorData>, bool) {
    const RENAMES: [(&str, &str); 3] = [
        ("classifier.dense.", "dense."),
        ("pooler.dense.", "dense."),
        ("classifier.out_proj.", "classifier."),
    ];
    let renamed: BTreeMap<String, TensorData> = weights
        .into_iter()
        .map(|(key, value)| {
            let key = RENAMES
                .iter()
                .find_map(|(from, to)| key.strip_prefix(from).map(|rest| format!("{to}{rest}")))
                .unwrap_or(key);
            (key, value)
        })
        .collect();
    let dense = renamed.keys().any(|k| k.starts_with("dense."));
    (renamed, dense)
}

impl ClassificationHeadConfig {
    /// RoBERTa's head: a tanh dense layer on the first position, the same dropout before it.
    pub fn with_roberta_dense(self) -> Self {
        let dense = DensePooling { activation: Activation::Tanh, dropout: self.dropout };
        self.with_dense(Some(dense))
    }

    /// Builds the head with PyTorch's default `Linear` init.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClassificationHead<B> {
        let h = self.hidden_size;
        ClassificationHead {
            dropout: DropoutConfig::new(self.dropout).init(),
            dense: self.dense.map(|_| LinearConfig::new(h, h).init(device)),
            dense_dropout: DropoutConfig::new(self.dense.map_or(0.0, |d| d.dropout)).init(),
            activation: self.dense.map_or(Activation::Tanh, |d| d.activation),
            classifier: LinearConfig::new(h, self.num_labels).init(device),
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
            (Some(dense), _) => {
                self.activation.forward(dense.forward(dropout(first(), self.dense_dropout.prob)))
            }
            (None, Some(pooled)) => pooled,
            (None, None) => first(),
        };
        self.classifier.forward(dropout(features, self.dropout.prob))
    }
}
