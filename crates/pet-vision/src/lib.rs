//! Visual Prompt Tuning and the delta family on ViT (Dosovitskiy et al., 2021): Hugging Face
//! `vit` folders loaded strictly, with pet-core's seams, so that every delta of pet-core (prompts
//! placed after `[CLS]`, deep prompts, prefixes, LoRA, adapters, BitFit) runs on a ViT.
//!
//! - [`vit::ViTConfig`]: `config.json`, checked.
//! - [`vit::ViT`]: the network (`ViTModel`), a [`pet_core::Backbone`].
//! - [`vit::load_vit`]: a Hugging Face folder (`config.json`, `model.safetensors`).

pub mod error;
pub mod image;
pub mod vit;

pub use error::{Result, VisionError};
