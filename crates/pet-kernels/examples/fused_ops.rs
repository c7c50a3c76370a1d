//! pet-kernels on its own: the fused GELU and layer norm on burn-flex against Burn's composed
//! operations, forward and backward.
//!
//! Run with `cargo run -p pet-kernels --example fused_ops`.

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Distribution, Tensor};
use pet_kernels::{LayerNorm, gelu};

type B = Autodiff<Flex>;

fn main() {
    let device = Default::default();
    let x =
        Tensor::<B, 3>::random([4, 16, 64], Distribution::Normal(0.0, 1.0), &device).require_grad();

    // GELU (the exact, erf form): fused kernel against the composed activation.
    let fused = gelu(x.clone());
    let composed = burn::tensor::activation::gelu(x.clone());
    let forward = (fused.clone() - composed.clone()).abs().max().into_scalar();
    let (fused_grad, composed_grad) = (fused.sum().backward(), composed.sum().backward());
    let backward = (x.grad(&fused_grad).expect("grad") - x.grad(&composed_grad).expect("grad"))
        .abs()
        .max()
        .into_scalar();
    println!("gelu: max |fused - composed| forward {forward:e}, gradient {backward:e}");

    // Layer norm over the last dimension, as BERT's `LayerNorm` module.
    let norm = LayerNorm::new(64, 1e-12, &device);
    let y = norm.forward(x.clone());
    let mean = y.clone().mean_dim(2).abs().max().into_scalar();
    let var = y.var(2).sub_scalar(1.0).abs().max().into_scalar();
    println!("layer norm: largest |row mean| {mean:e}, largest |row variance - 1| {var:e}");
}
