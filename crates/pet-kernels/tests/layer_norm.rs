//! Layer norm: fused against `burn::nn::LayerNorm` and the composed `B::layer_norm` it runs.

use burn::backend::{Flex, NdArray};
use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorPrimitive};

use crate::common::{Train, assert_close, input};

/// Both paths compute in `f32` with differently ordered sums (the fused one in 16 lanes, Burn's
/// by its reductions): the worst scaled differences seen are 2e-7 for values and 7e-7 for the
/// gradients (gamma's and beta's sum 21 rows). 2e-6 leaves a margin yet catches a mean rounded to
/// one `f32` on rows around 100, which costs 1.5e-5 on gamma's gradient.
const TOLERANCE: f32 = 2e-6;

/// `burn::nn::LayerNorm`'s default.
const EPSILON: f64 = 1e-5;

/// 129: not a multiple of the SIMD width, so row tails are exercised.
const SHAPE: [usize; 3] = [3, 7, 129];
const D: usize = SHAPE[2];

fn x<B: Backend>() -> Tensor<B, 3> {
    input(SHAPE, Distribution::Normal(0.5, 2.0), 11)
}

fn gamma<B: Backend>() -> Tensor<B, 1> {
    input([D], Distribution::Normal(1.0, 0.5), 12)
}

fn beta<B: Backend>() -> Tensor<B, 1> {
    input([D], Distribution::Normal(0.0, 0.5), 13)
}

/// What `burn::nn::LayerNorm::forward` runs.
fn composed<B: Backend, const N: usize>(
    x: Tensor<B, N>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
) -> Tensor<B, N> {
    Tensor::from_primitive(TensorPrimitive::Float(B::layer_norm(
        x.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        Some(beta.into_primitive().tensor()),
        EPSILON,
    )))
}

fn module<B: Backend>(gamma: Tensor<B, 1>, beta: Tensor<B, 1>) -> LayerNorm<B> {
    let mut module = LayerNormConfig::new(D).with_epsilon(EPSILON).init(&Default::default());
    module.gamma = Param::from_tensor(gamma);
    module.beta = Some(Param::from_tensor(beta));
    module
}

#[test]
fn inference_matches_burn_layer_norm() {
    let fused = pet_kernels::layer_norm(x::<Flex>(), gamma(), beta(), EPSILON);
    let want = module::<Flex>(gamma(), beta()).forward(x());
    assert_close(fused, want, TOLERANCE, "layer norm");
}

/// Forward value and the gradients of `[x, gamma, beta]` (`None` where untracked) of
/// `sum(layer_norm(x + shift) * weights)`, fused or composed.
type Run = (Tensor<Flex, 3>, [Option<Tensor<Flex, 3>>; 3]);

fn run(fused: bool, x: Tensor<Train, 3>, shift: f32, train_params: bool) -> Run {
    let weights = input::<Train, 3>(SHAPE, Distribution::Normal(0.0, 1.0), 14);
    let x = x.require_grad();
    let (gamma, beta) = if train_params {
        (gamma::<Train>().require_grad(), beta::<Train>().require_grad())
    } else {
        (gamma::<Train>(), beta::<Train>())
    };
    let shifted = x.clone() + shift;
    let y = if fused {
        pet_kernels::layer_norm(shifted, gamma.clone(), beta.clone(), EPSILON)
    } else {
        composed(shifted, gamma.clone(), beta.clone())
    };
    let grads = (y.clone() * weights).sum().backward();
    let column = |t: Tensor<Flex, 1>| t.reshape([1, 1, D]);
    (y.inner(), [x.grad(&grads), gamma.grad(&grads).map(column), beta.grad(&grads).map(column)])
}

fn assert_runs_close((y, grads): Run, (want_y, want_grads): Run) {
    assert_close(y, want_y, TOLERANCE, "layer norm forward");
    for ((grad, want), name) in grads.into_iter().zip(want_grads).zip(["x", "gamma", "beta"]) {
        match (grad, want) {
            (Some(grad), Some(want)) => {
                assert_close(grad, want, TOLERANCE, &format!("layer norm gradient of {name}"))
            }
            (None, None) => {}
            (grad, want) => {
                panic!("gradient of {name}: fused {}, composed {}", grad.is_some(), want.is_some())
            }
        }
    }
}

#[test]
fn forward_and_gradients_match_under_autodiff() {
    let fused = run(true, x(), 0.0, true);
    assert!(fused.1.iter().all(Option::is_some), "every input is tracked");
    assert_runs_close(fused, run(false, x(), 0.0, true));
}

#[test]
fn frozen_parameters_still_give_the_input_gradient() {
    let fused = run(true, x(), 0.0, false);
    assert!(fused.1[0].is_some() && fused.1[1..].iter().all(Option::is_none));
    assert_runs_close(fused, run(false, x(), 0.0, false));
}

/// Rows around 100 with standard deviation 1: `E[x^2] - E[x]^2` would cancel ~4 of `f32`'s 7
/// digits. Layer norm ignores a shift, so the reference is the composed path on the centered
/// input (`x - 100` is exact in `f32` there), values and gradients.
#[test]
fn rows_far_from_zero_keep_precision() {
    // A property of the fused kernel (Burn's composed layer norm loses it far from zero).
    if !pet_kernels::dispatch::kernels_on() {
        return eprintln!("skipped: pet's kernels are off (PET_CPU_LEVEL=none)");
    }
    let far = || input::<Train, 3>(SHAPE, Distribution::Normal(100.0, 1.0), 15);
    assert_runs_close(run(true, far(), 0.0, true), run(false, far(), -100.0, true));
    let far = || input::<Flex, 3>(SHAPE, Distribution::Normal(100.0, 1.0), 15);
    let fused = pet_kernels::layer_norm(far(), gamma(), beta(), EPSILON);
    let want = module::<Flex>(gamma(), beta()).forward(far() - 100.0);
    assert_close(fused, want, TOLERANCE, "layer norm inference far from zero");
}

#[test]
fn other_backends_compose_burn_ops() {
    let fused = pet_kernels::layer_norm(x::<NdArray>(), gamma(), beta(), EPSILON);
    let want = module::<NdArray>(gamma(), beta()).forward(x());
    assert_close(fused, want, 0.0, "ndarray layer norm");
}
