//! DeBERTa's sequence-classification head (transformers' `ContextPooler` +
//! `DebertaV2ForSequenceClassification`'s classifier) as a configuration of pet-nlp's one
//! [`ClassificationHead`](crate::heads::ClassificationHead): the first position's hidden state,
//! dropout (`pooler_dropout`), `pooler.dense`, the `pooler_hidden_act` activation, dropout
//! (`cls_dropout`, else `hidden_dropout_prob`), `classifier`. Transformers' task-checkpoint keys
//! (`pooler.dense.*`, `classifier.*`) load through
//! [`from_hf_head_keys`](crate::heads::classification::from_hf_head_keys), which
//! [`EncoderFolder::load_head`](crate::EncoderFolder::load_head) applies.
//!
//! Token classification needs no DeBERTa-specific head: `DebertaV2ForTokenClassification` is
//! dropout and a `classifier` linear on every hidden state, as BERT's.

use crate::deberta::config::DebertaV2Config;
use crate::heads::ClassificationHeadConfig;
use crate::heads::classification::DensePooling;

impl DebertaV2Config {
    /// The ContextPooler classification head for `num_labels` classes.
    pub fn classification_head(&self, num_labels: usize) -> ClassificationHeadConfig {
        let dense =
            DensePooling { activation: self.pooler_hidden_act, dropout: self.pooler_dropout };
        ClassificationHeadConfig::new(self.hidden_size, num_labels)
            .with_dropout(self.cls_dropout.unwrap_or(self.hidden_dropout_prob))
            .with_dense(Some(dense))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Tensor;
    use pet_core::EncoderOutput;

    use super::*;

    type B = burn::backend::Flex;

    #[test]
    fn the_context_pooler_reads_only_the_first_position() {
        let device = Default::default();
        let head = DebertaV2Config::tiny().classification_head(3).init::<B>(&device);
        let hidden = Tensor::<B, 3>::random(
            [2, 4, 16],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let changed = Tensor::cat(
            vec![hidden.clone().narrow(1, 0, 1), hidden.clone().narrow(1, 1, 3) * 2.0],
            1,
        );
        let output = |hidden: Tensor<B, 3>| EncoderOutput {
            mask: Tensor::ones([2, 4], &device),
            hidden,
            prompt: Default::default(),
            pooled: None,
        };
        let a = head.forward(output(hidden));
        assert_eq!(a.dims(), [2, 3]);
        let diff = (a - head.forward(output(changed))).abs().max().into_scalar();
        assert_eq!(diff, 0.0);
    }
}
