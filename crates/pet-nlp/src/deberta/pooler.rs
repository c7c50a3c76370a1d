//! DeBERTa's sequence-classification head (transformers' `ContextPooler` +
//! `DebertaV2ForSequenceClassification`'s classifier): the first position's hidden state,
//! dropout, `pooler.dense`, the `pooler_hidden_act` activation (gelu), dropout, `classifier`.
//! Parameter paths are transformers' task-checkpoint keys (`pooler.dense.*`, `classifier.*`), so
//! [`EncoderFolder::load_head`](crate::EncoderFolder::load_head) loads them as they are.
//!
//! Token classification needs no DeBERTa-specific head: `DebertaV2ForTokenClassification` is
//! dropout and a `classifier` linear on every hidden state, as BERT's.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};
use pet_core::blocks::Activation;

use crate::deberta::config::DebertaV2Config;

/// `act(dense(dropout(hidden[:, 0])))` (`pooler`).
#[derive(Module, Debug)]
pub struct ContextPooler<B: Backend> {
    /// `hidden -> hidden`
    pub dense: Linear<B>,
    /// `pooler_dropout`.
    pub dropout: Dropout,
    /// `pooler_hidden_act`.
    #[module(skip)]
    pub activation: Activation,
}

/// The pooler and the classifier of `DebertaV2ForSequenceClassification`.
#[derive(Module, Debug)]
pub struct ContextPoolerClassifier<B: Backend> {
    /// The pooler.
    pub pooler: ContextPooler<B>,
    /// `cls_dropout`, or `hidden_dropout_prob` when absent.
    pub dropout: Dropout,
    /// `hidden -> num_labels`
    pub classifier: Linear<B>,
}

impl<B: Backend> ContextPooler<B> {
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`, output: `[batch, hidden]`
    pub fn forward(&self, hidden: Tensor<B, 3>) -> Tensor<B, 2> {
        let [batch, _, size] = hidden.dims();
        // [batch, hidden] at the first position
        let first = hidden.narrow(1, 0, 1).reshape([batch, size]);
        self.activation.forward(self.dense.forward(self.dropout.forward(first)))
    }
}

impl<B: Backend> ContextPoolerClassifier<B> {
    /// A head with random weights for `num_labels` classes, sized and configured by `config`.
    pub fn new(config: &DebertaV2Config, num_labels: usize, device: &B::Device) -> Self {
        let h = config.hidden_size;
        Self {
            pooler: ContextPooler {
                dense: LinearConfig::new(h, h).init(device),
                dropout: DropoutConfig::new(config.pooler_dropout).init(),
                activation: config.pooler_hidden_act,
            },
            dropout: DropoutConfig::new(config.cls_dropout.unwrap_or(config.hidden_dropout_prob))
                .init(),
            classifier: LinearConfig::new(h, num_labels).init(device),
        }
    }

    /// Class scores.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]` (the first position is pooled; with an input prompt
    ///   that is the first prompt position, as transformers' pooler sees it), output:
    ///   `[batch, num_labels]`
    pub fn forward(&self, hidden: Tensor<B, 3>) -> Tensor<B, 2> {
        self.classifier.forward(self.dropout.forward(self.pooler.forward(hidden)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = burn::backend::Flex;

    #[test]
    fn the_pooler_reads_only_the_first_position() {
        let device = Default::default();
        let head = ContextPoolerClassifier::<B>::new(&DebertaV2Config::tiny(), 3, &device);
        let hidden = Tensor::<B, 3>::random(
            [2, 4, 16],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let changed = Tensor::cat(
            vec![hidden.clone().narrow(1, 0, 1), hidden.clone().narrow(1, 1, 3) * 2.0],
            1,
        );
        let a = head.forward(hidden);
        assert_eq!(a.dims(), [2, 3]);
        let diff = (a - head.forward(changed)).abs().max().into_scalar();
        assert_eq!(diff, 0.0);
    }
}
