//! Sequence classification as P-Tuning v2 does it (`BertPrefixForSequenceClassification`):
//! the pooler's output (or, for a backbone without pooler, the first position's hidden state),
//! dropout, then a linear layer to the classes.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};
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
}

/// `classifier(dropout(pooled))`.
#[derive(Module, Debug)]
pub struct ClassificationHead<B: Backend> {
    /// Dropout on the pooled features.
    pub dropout: Dropout,
    /// `hidden -> num_labels`
    pub classifier: Linear<B>,
}

impl ClassificationHeadConfig {
    /// Builds the head with PyTorch's default `Linear` init.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClassificationHead<B> {
        ClassificationHead {
            dropout: DropoutConfig::new(self.dropout).init(),
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
        let features = match encoded.pooled {
            Some(pooled) => pooled,
            None => {
                let [batch, _, hidden] = encoded.hidden.dims();
                encoded.hidden.narrow(1, 0, 1).reshape([batch, hidden])
            }
        };
        self.classifier.forward(self.dropout.forward(features))
    }
}
