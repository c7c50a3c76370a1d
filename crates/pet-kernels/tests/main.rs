//! Parity of every fused kernel with Burn's composed operations: forward values on burn-flex with
//! and without autodiff, and the gradients of every input.

mod attention;
mod attention_probs;
mod common;
mod dropout;
mod gelu;
mod heads;
mod layer_norm;
mod linear;
