//! pet-core: the delta abstractions of parameter-efficient tuning.
//!
//! `backbone (frozen) + delta (trainable) + head = task model`. A [`Backbone`] exposes seams
//! (input prompt, per-layer prompt, attention prefix, linear sites, sub-layer outputs,
//! parameters by path) and runs `forward_with(input, &delta)`; a [`Delta`] fills seams with new
//! parameters. This crate holds the traits, every delta of the delta-tuning taxonomy
//! ([`delta::prompt`], [`delta::prefix`], [`delta::lora`], [`delta::adapter`], BitFit and partial
//! tuning as [`Trainability`] policies, tuples as combinations), parameter reports, delta
//! checkpoints, PEFT adapter interop and the training loop. It is generic over
//! `B: burn::tensor::backend::Backend` and never names a backend; its hot operations (GELU, layer
//! norm, attention probabilities, dropout) go through `pet_kernels`, fused on the CPU.

pub mod backbone;
pub mod blocks;
pub mod checkpoint;
pub mod delta;
pub mod digest;
pub mod error;
pub mod metrics;
pub mod params;
pub mod peft;
pub mod precision;
pub mod report;
pub mod rng;
pub mod safetensors_io;
pub mod seam;
pub mod task;
pub mod train;
pub mod trainability;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use backbone::{Backbone, BackboneIdentity, EncoderOutput};
pub use delta::{Delta, NoDelta};
pub use error::{PetError, Result};
pub use report::ParamReport;
pub use seam::{
    AttentionPrefix, BackboneShape, LinearKind, LinearSite, PrefixPositions, SublayerKind,
    SublayerSite,
};
pub use trainability::Trainability;
