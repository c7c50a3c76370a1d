//! [`TaskModel`]: backbone + delta + head, the one model type of every text task. A task names
//! its head (`TaskModel<B, ClassificationHead<B>>`, ...) and adds its forward on top of
//! [`TaskModel::encode`].

use burn::module::Module;
use burn::tensor::backend::Backend;
use pet_core::delta::set::DeltaSet;
use pet_core::precision::Precision;
use pet_core::{Backbone, EncoderOutput, PetError};

use crate::backbone::NlpBackbone;
use crate::batch::PaddedBatch;

/// An encoder, its deltas and a task head; parameter paths `backbone.*`, `delta.*`, `head.*`.
#[derive(Module, Debug)]
pub struct TaskModel<B: Backend, H: Module<B>> {
    /// The encoder.
    pub backbone: NlpBackbone<B>,
    /// The deltas.
    pub delta: DeltaSet<B>,
    /// The head.
    pub head: H,
    /// Whether the backbone sees the inputs' token type ids. PEFT 0.17's `QUESTION_ANS` prompt
    /// learning (prefix and prompt tuning) never forwards them to the model, so an adapter it
    /// trained was trained on all-zero types; such an adapter is read with this off.
    #[module(skip)]
    pub token_types: bool,
}

impl<B: Backend, H: Module<B>> TaskModel<B, H> {
    /// A model that sees token type ids.
    pub fn new(backbone: NlpBackbone<B>, delta: DeltaSet<B>, head: H) -> Self {
        Self { backbone, delta, head, token_types: true }
    }

    /// The encoder's output for `batch` on `device`, with the deltas in their seams.
    ///
    /// # Shapes
    /// - output hidden: `[batch, n_prompt + seq, hidden]`
    pub fn encode(&self, batch: &PaddedBatch, device: &B::Device) -> EncoderOutput<B> {
        let mut input = batch.to_input(device);
        if !self.token_types {
            input.token_type_ids = None;
        }
        self.backbone.forward_with(input, &self.delta)
    }

    /// The model with its deltas exported (a reparameterized prefix materialized).
    pub fn exported(self) -> Self {
        Self { delta: self.delta.export(), ..self }
    }

    /// The model with the backbone's linear sites in `precision` (an inference setting).
    ///
    /// # Errors
    /// When the backend cannot store `precision`'s weights ([`Precision::apply`]).
    pub fn with_precision(self, precision: Precision) -> Result<Self, PetError> {
        Ok(Self { backbone: precision.apply(self.backbone)?, ..self })
    }
}
