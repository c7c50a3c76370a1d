//! Extractive question answering as transformers' `BertForQuestionAnswering` (and P-Tuning v2's
//! `BertPrefixForQuestionAnswering`): one linear layer `hidden -> 2` giving start and end logits
//! for every token; prompt positions are skipped.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};
use pet_core::EncoderOutput;

/// Head settings.
#[derive(Config, Debug)]
pub struct QaHeadConfig {
    /// Hidden size of the backbone.
    pub hidden_size: usize,
}

/// `qa_outputs(hidden)` split into start and end logits.
#[derive(Module, Debug)]
pub struct QaHead<B: Backend> {
    /// `hidden -> 2` (start, end), Hugging Face's `qa_outputs`.
    pub qa_outputs: Linear<B>,
}

impl QaHeadConfig {
    /// Builds the head.
    pub fn init<B: Backend>(&self, device: &B::Device) -> QaHead<B> {
        QaHead { qa_outputs: LinearConfig::new(self.hidden_size, 2).init(device) }
    }
}

impl<B: Backend> QaHead<B> {
    /// Start and end logits of the input tokens.
    ///
    /// # Shapes
    /// - output: two `[batch, seq]`
    pub fn forward(&self, encoded: EncoderOutput<B>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        // [batch, seq, hidden]: the input positions, prompt slots left out
        let tokens = encoded.prompt.remove(encoded.hidden);
        let [batch, seq, _] = tokens.dims();
        // [batch, seq, 2]
        let logits = self.qa_outputs.forward(tokens);
        let start = logits.clone().narrow(2, 0, 1).reshape([batch, seq]);
        let end = logits.narrow(2, 1, 1).reshape([batch, seq]);
        (start, end)
    }
}
