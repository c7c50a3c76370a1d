//! GELU: fused against `burn::tensor::activation::gelu` (libm `erf`).

use burn::backend::Flex;
use burn::backend::NdArray;
use burn::tensor::{Distribution, Tensor};

use crate::common::{Train, assert_close, input};

/// The fused `erf` is within 3e-7 of libm's; GELU and its slope inherit that.
const TOLERANCE: f32 = 1e-6;

fn x<B: burn::tensor::backend::Backend>() -> Tensor<B, 3> {
    input([3, 7, 129], Distribution::Normal(0.0, 3.0), 7)
}

#[test]
fn inference_matches_composed_gelu() {
    let fused = pet_kernels::gelu(x::<Flex>());
    assert_close(fused, burn::tensor::activation::gelu(x::<Flex>()), TOLERANCE, "gelu");
}

#[test]
fn forward_and_gradient_match_under_autodiff() {
    let weights = input::<Train, 3>([3, 7, 129], Distribution::Normal(0.0, 1.0), 8);
    let run = |fused: bool| {
        let x = x::<Train>().require_grad();
        let y = if fused {
            pet_kernels::gelu(x.clone())
        } else {
            burn::tensor::activation::gelu(x.clone())
        };
        let grads = (y.clone() * weights.clone()).sum().backward();
        (y.inner(), x.grad(&grads).expect("x is tracked"))
    };
    let (y, dx) = run(true);
    let (want_y, want_dx) = run(false);
    assert_close(y, want_y, TOLERANCE, "gelu forward");
    assert_close(dx, want_dx, TOLERANCE, "gelu gradient");
}

#[test]
fn other_backends_compose_burn_ops() {
    let x = input::<NdArray, 2>([4, 33], Distribution::Normal(0.0, 2.0), 3);
    let fused = pet_kernels::gelu(x.clone());
    assert_close(fused, burn::tensor::activation::gelu(x), 0.0, "ndarray gelu");
}
