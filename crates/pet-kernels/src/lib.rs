//! pet-kernels: fused CPU kernels for the element-wise and row-wise operations of a transformer
//! layer, each with its backward pass.
//!
//! Quick start: `cargo run -p pet-kernels --example fused_ops`; its source,
//! `examples/fused_ops.rs`, uses only the public API.
//!
//! Burn composes GELU, layer norm and softmax from single-purpose tensor operations; on the CPU
//! each of those is one pass over memory (several single-threaded, with scalar `erf`/`exp`), and
//! under autodiff each records its own graph node and keeps its own intermediates. The functions
//! here are one pass forward and one pass backward instead, vectorized (AVX-512 or AVX2/FMA where
//! the CPU has them, chosen at run time) and split over rayon's threads.
//!
//! Every function is generic over `B: Backend` and picks its path by the backend's type
//! ([`dispatch`]): burn-flex (`Flex`) runs the fused kernel, `Autodiff<Flex>` runs it as one
//! autodiff operation with the fused backward ([`fused`]), and every other backend (wgpu, CUDA,
//! ndarray) gets the composed Burn operations, unchanged. Only `f32` tensors take the fused path.
//! Parity with the composed operations, values and gradients, is tested in `tests/`.

pub mod attention;
pub mod attention_probs;
pub mod dispatch;
pub mod dropout;
pub mod fused;
pub mod gelu;
pub mod heads;
pub mod layer_norm;
pub mod linear;
pub mod math;
pub mod norm;
pub mod parallel;

pub use attention::{AttentionOptions, attention, attention_with};
pub use attention_probs::attention_probs;
pub use dropout::dropout;
pub use gelu::gelu;
pub use heads::{merge_heads, split_heads};
pub use layer_norm::layer_norm;
pub use linear::linear;
pub use norm::LayerNorm;
