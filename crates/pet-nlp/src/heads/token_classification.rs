//! Token classification for sequence labeling as P-Tuning v2 does it
//! (`BertPrefixForTokenClassification`): dropout on every hidden state and a linear layer to the
//! tags, read at the first sub-word of each word; optionally a linear-chain CRF over the words
//! (`torchcrf`), decoded with Viterbi.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, backend::Backend};
use pet_core::EncoderOutput;

use crate::heads::crf::{Crf, CrfConfig};
use pet_kernels::dropout;

/// Head settings.
#[derive(Config, Debug)]
pub struct TokenClassificationHeadConfig {
    /// Hidden size of the backbone.
    pub hidden_size: usize,
    /// Number of tags.
    pub num_labels: usize,
    /// Dropout before the classifier.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// A CRF over the word-level emissions.
    #[config(default = false)]
    pub crf: bool,
}

/// `classifier(dropout(hidden))` at first sub-words, with an optional CRF.
#[derive(Module, Debug)]
pub struct TokenClassificationHead<B: Backend> {
    /// Dropout on hidden states.
    pub dropout: Dropout,
    /// `hidden -> num_labels`
    pub classifier: Linear<B>,
    /// The CRF, when configured.
    pub crf: Option<Crf<B>>,
}

impl TokenClassificationHeadConfig {
    /// Builds the head.
    pub fn init<B: Backend>(&self, device: &B::Device) -> TokenClassificationHead<B> {
        TokenClassificationHead {
            dropout: DropoutConfig::new(self.dropout).init(),
            classifier: LinearConfig::new(self.hidden_size, self.num_labels).init(device),
            crf: self.crf.then(|| CrfConfig::new(self.num_labels).init(device)),
        }
    }
}

impl<B: Backend> TokenClassificationHead<B> {
    /// Tag scores of every word, read at its first sub-word (prompt positions skipped).
    ///
    /// # Shapes
    /// - `first_subword`: `[batch, words]`, token index of each word's first sub-word (any valid
    ///   index for padding words)
    /// - output: `[batch, words, num_labels]`
    pub fn emissions(
        &self,
        encoded: EncoderOutput<B>,
        first_subword: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        // [batch, seq, hidden]: the input positions, prompt slots left out
        let tokens = encoded.prompt.remove(encoded.hidden);
        let [batch, _, hidden] = tokens.dims();
        let [_, words] = first_subword.dims();
        let index = first_subword.unsqueeze_dim::<3>(2).expand([batch, words, hidden]);
        // [batch, words, hidden]
        let at_words = tokens.gather(1, index);
        self.classifier.forward(dropout(at_words, self.dropout.prob))
    }

    /// Mean loss over real words: the CRF's negative log-likelihood per sentence, or
    /// cross-entropy per word.
    ///
    /// # Shapes
    /// - `emissions`: `[batch, words, num_labels]`, `tags`: `[batch, words]`, `mask`: `[batch, words]`
    pub fn loss(
        &self,
        emissions: Tensor<B, 3>,
        tags: Tensor<B, 2, Int>,
        mask: Tensor<B, 2>,
    ) -> Tensor<B, 1> {
        match &self.crf {
            Some(crf) => crf.log_likelihood(emissions, tags, mask).neg().mean(),
            None => {
                let [batch, words, _] = emissions.dims();
                // [batch, words]
                let picked = log_softmax(emissions, 2)
                    .gather(2, tags.unsqueeze_dim::<3>(2))
                    .reshape([batch, words]);
                (picked * mask.clone()).sum().neg() / mask.sum()
            }
        }
    }

    /// Best tag of every real word, per sentence.
    pub fn decode(
        &self,
        emissions: Tensor<B, 3>,
        mask: Tensor<B, 2>,
        lengths: &[usize],
    ) -> Vec<Vec<usize>> {
        match &self.crf {
            Some(crf) => crf.decode(emissions, mask),
            None => {
                let [_, words, _] = emissions.dims();
                let best = emissions
                    .argmax(2)
                    .into_data()
                    .convert::<i64>()
                    .into_vec::<i64>()
                    .unwrap_or_default();
                lengths
                    .iter()
                    .enumerate()
                    .map(|(row, &n)| {
                        best[row * words..row * words + n].iter().map(|&t| t as usize).collect()
                    })
                    .collect()
            }
        }
    }
}
