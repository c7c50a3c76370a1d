//! Linear layers: the flattened product against Burn's `Linear`, and a bf16 weight's product
//! (`pet_gemm`'s kernel where the CPU has AVX512-BF16) against the same numerics from plain `f32`
//! operations on bf16-rounded operands, and against `f32`. (The composed bf16 route needs a
//! backend that stores bf16; ndarray does not.)

use burn::backend::Flex;
use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Distribution, Tensor, TensorData, bf16};

use crate::common::{assert_close, input};

/// Flattening changes no product: only the order of `f32` sums may differ.
const FLATTENED_TOLERANCE: f32 = 1e-6;

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

#[test]
fn flattened_product_matches_burn_linear() {
    let layer = layer::<Flex>(true);
    let flat = pet_kernels::linear(&layer, x::<Flex>());
    assert_close(flat, layer.forward(x::<Flex>()), FLATTENED_TOLERANCE, "linear");
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
