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
//!
//! # Quick start
//!
//! A frozen encoder, P-Tuning v2 plus LoRA as one delta, a forward pass, a delta checkpoint
//! (the whole program, with an optimizer step and a LoRA merge, is
//! `examples/deltas_on_an_encoder.rs`: `cargo run -p pet-core --example deltas_on_an_encoder`):
//!
//! ```ignore
//! let spec = DeltaSpec::preset("ptuning-v2+lora")?;
//! let config = PostNormEncoderConfig::new("bert".into(), 100, 32, 2, 4, 64);
//! let backbone = spec.trainability.apply(config.init::<B>(&device));
//! let delta = spec.build(&backbone, &device)?;
//! let out = backbone.forward_with(EncoderInput::new(input_ids, attention_mask), &delta);
//! let method = serde_json::to_value(&spec)?;
//! DeltaCheckpoint::capture::<B, _>(&delta, &|e| e.trainable, method, backbone.identity())
//!     .save(Path::new("delta.safetensors"))?;
//! ```

pub mod backbone;
pub mod blocks;
pub mod checkpoint;
pub mod config_check;
pub mod config_json;
pub mod delta;
pub mod digest;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod output;
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
pub use limits::{InputLimits, InputViolation};
pub use report::ParamReport;
pub use seam::{
    AttentionKind, AttentionPrefix, AttentionPrefixes, BackboneShape, LinearKind, LinearSite,
    PrefixPositions, PrefixRelativePosition, PrefixSite, PromptSlots, Stack, SublayerKind,
    SublayerSite,
};
pub use trainability::Trainability;
