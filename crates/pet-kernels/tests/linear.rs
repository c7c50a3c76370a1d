//! Linear layers: the flattened product (`pet_gemm`'s kernel on burn-flex at the level this CPU
//! runs, `PET_CPU_LEVEL` capping it) against Burn's `Linear` on ndarray, forward and gradients; a bf16 weight's
//! product against the same numerics from plain `f32` operations on bf16-rounded operands, and
//! against `f32`. (The composed bf16 route needs a backend that stores bf16; ndarray does not.)

use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Distribution, Tensor, TensorData, bf16};

use crate::common::{Train, assert_close, input};

/// The kernel and Burn's GEMM differ only in the order of `f32` sums over 96 inputs of weights
/// of 0.1.
const FLATTENED_TOLERANCE: f32 = 1e-6;

/// Gradients sum unit-scale terms (80 per input gradient, 57 rows per weight and bias gradient),
/// whose `f32` sums in another order differ by a few ulp of values up to ~10.
const GRADIENT_TOLERANCE: f32 = 1e-5;

/// The kernel and the composed route round the same operands to bf16 and sum exact products in
/// `f32`; they differ only in summation order over `d_in` = 96.
const BF16_ROUTES_TOLERANCE: f32 = 1e-5;

/// bf16 keeps 8 significant bits: each operand is off by up to 2^-9 relatively, which over 96
/// products of unit-scale inputs and weights of 0.1 leaves errors of a few 1e-3.
const BF16_AGAINST_F32_TOLERANCE: f32 = 1e-2;

/// A `96 -> 80` layer of seeded values (Burn's initializers are lazy and draw again per clone).
fn layer<B: Backend>(bias: bool) -> Linear<B> {
    let scale = Distribution::Uniform(-0.1, 0.1);
    Linear {
        weight: Param::from_tensor(input([96, 80], scale, 11)),
        bias: bias.then(|| Param::from_tensor(input([80], scale, 13))),
    }
}

fn with_bf16_weight<B: Backend>(mut layer: Linear<B>) -> Linear<B> {
    layer.weight = Param::from_tensor(layer.weight.val().cast(DType::BF16));
    layer
}

fn x<B: Backend>() -> Tensor<B, 3> {
    input([3, 19, 96], Distribution::Normal(0.0, 1.0), 12)
}

/// `round_bf16(x) · weight + bias` from plain Burn operations, in `f32`. `x` is rounded by
/// `half` (to nearest even): burn-flex's own `f32 -> bf16` cast goes through `f64` and rounds
/// some values (e.g. `0x3e988007`) down.
fn bf16_reference<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let rounded: Vec<f32> = x.to_data().iter::<f32>().map(|v| bf16::from_f32(v).to_f32()).collect();
    let x = Tensor::from_data(TensorData::new(rounded, x.shape()), &x.device());
    let rounded = Linear {
        weight: Param::from_tensor(layer.weight.val().cast(DType::BF16).cast(DType::F32)),
        bias: layer.bias.clone(),
    };
    rounded.forward(x)
}

fn on_flex<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<Flex, D> {
    Tensor::from_data(t.into_data(), &Default::default())
}

#[test]
fn flattened_product_matches_burn_linear() {
    for bias in [true, false] {
        let flat = pet_kernels::linear(&layer::<Flex>(bias), x::<Flex>());
        let burn = layer::<NdArray>(bias).forward(x::<NdArray>());
        assert_close(flat, on_flex(burn), FLATTENED_TOLERANCE, &format!("linear, bias {bias}"));
    }
}

/// Output and the gradients of the input, weight and bias (`None` where not tracked) of
/// `sum(linear(x) * weights)`, through `pet_kernels::linear` or Burn's `Linear`.
fn training_run<B: burn::tensor::backend::AutodiffBackend>(
    fused: bool,
    bias: bool,
    train_weight: bool,
) -> Vec<Option<Tensor<Flex, 3>>> {
    let mut layer = layer::<B>(bias);
    if train_weight {
        layer.weight = Param::from_tensor(layer.weight.val().require_grad());
        layer.bias = layer.bias.map(|b| Param::from_tensor(b.val().require_grad()));
    }
    let x = x::<B>().require_grad();
    let out = if fused { pet_kernels::linear(&layer, x.clone()) } else { layer.forward(x.clone()) };
    let weights = input::<B, 3>([3, 19, 80], Distribution::Normal(0.0, 1.0), 14);
    let grads = (out.clone() * weights).sum().backward();
    let as_3d = |t: Tensor<B::InnerBackend, 2>| on_flex(t).unsqueeze::<3>();
    let bias_grad = layer.bias.as_ref().and_then(|b| b.val().grad(&grads));
    vec![
        Some(on_flex(out.inner())),
        x.grad(&grads).map(on_flex),
        layer.weight.val().grad(&grads).map(as_3d),
        bias_grad.map(|b| as_3d(b.unsqueeze())),
    ]
}

#[test]
fn training_matches_burn_linear_values_and_gradients() {
    for (bias, train_weight) in [(true, true), (false, true), (true, false)] {
        let fused = training_run::<Train>(true, bias, train_weight);
        let burn = training_run::<Autodiff<NdArray>>(false, bias, train_weight);
        let what = ["output", "dx", "dweight", "dbias"];
        let tolerance =
            [FLATTENED_TOLERANCE, GRADIENT_TOLERANCE, GRADIENT_TOLERANCE, GRADIENT_TOLERANCE];
        for ((what, tolerance), (a, b)) in
            what.iter().zip(tolerance).zip(fused.into_iter().zip(burn))
        {
            let what = format!("{what}, bias {bias}, trained weight {train_weight}");
            match (a, b) {
                (Some(a), Some(b)) => assert_close(a, b, tolerance, &what),
                (None, None) => {}
                (a, b) => panic!("{what}: tracked on one side only ({a:?} against {b:?})"),
            }
        }
    }
}

#[test]
fn bf16_weight_matches_rounded_f32_product() {
    for bias in [true, false] {
        let layer = layer::<Flex>(bias);
        let want = bf16_reference(&layer, x::<Flex>());
        let layer = with_bf16_weight(layer);
        let got = pet_kernels::linear(&layer, x::<Flex>());
        assert_eq!(got.dtype(), DType::F32, "a bf16 linear returns f32");
        assert_close(got, want, BF16_ROUTES_TOLERANCE, "bf16 linear on burn-flex");
    }
}

#[test]
fn bf16_weight_stays_close_to_f32() {
    let layer = layer::<Flex>(true);
    let f32_out = pet_kernels::linear(&layer, x::<Flex>());
    let bf16_out = pet_kernels::linear(&with_bf16_weight(layer), x::<Flex>());
    assert_close(bf16_out.clone(), f32_out.clone(), BF16_AGAINST_F32_TOLERANCE, "bf16 vs f32");
    let difference = (bf16_out - f32_out).abs().max().into_scalar();
    assert!(difference > 0.0, "bf16 rounding changed nothing: the bf16 path was not taken");
}
