//! Fused inference attention (burn-flex with `pet_gemm`'s kernel) against Burn's composed
//! operations (ndarray) in `f32`, and against an `f64` reference of the bf16 numerics.

use burn::backend::{Flex, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Distribution, Tensor, TensorData, bf16};

use crate::common::{assert_close, input};

/// Both sides compute the same `f32` products and softmax; sums run in a different order.
const F32_TOLERANCE: f32 = 1e-5;

/// The reference rounds the same operands to bf16 as the kernel, but its probabilities are
/// `f64` before rounding: where an `f32` and an `f64` probability round to neighbouring bf16
/// values, that term is off by one bf16 step (2^-8 relative).
const BF16_REFERENCE_TOLERANCE: f32 = 5e-3;

/// bf16 against `f32`: 8 significant bits per operand, through two products.
const BF16_AGAINST_F32_TOLERANCE: f32 = 3e-2;

const BATCH: usize = 3;
const QUERIES: usize = 9;
const KEYS: usize = 13;
const HEADS: usize = 4;
const HIDDEN: usize = 64;
const SCALE: f64 = 0.25;

/// Seeded `q`, `k`, `v`.
fn operands<B: Backend>() -> [Tensor<B, 3>; 3] {
    let normal = Distribution::Normal(0.0, 1.0);
    [
        input([BATCH, QUERIES, HIDDEN], normal, 21),
        input([BATCH, KEYS, HIDDEN], normal, 22),
        input([BATCH, KEYS, HIDDEN], normal, 23),
    ]
}

/// Hides the last `b + 1` keys of batch element `b`; `shared`: one row (element 0's) for all.
fn mask_bias<B: Backend>(shared: bool) -> Tensor<B, 2> {
    let rows = if shared { 1 } else { BATCH };
    let bias: Vec<f32> = (0..rows * KEYS)
        .map(|i| if i % KEYS >= KEYS - 1 - i / KEYS { f32::MIN } else { 0.0 })
        .collect();
    Tensor::from_data(TensorData::new(bias, [rows, KEYS]), &Default::default())
}

fn attention<B: Backend>(shared_mask: bool, products: DType) -> Tensor<B, 3> {
    let [q, k, v] = operands::<B>();
    pet_kernels::attention(q, k, v, mask_bias(shared_mask), HEADS, SCALE, products, 0.0)
}

fn on_flex<B: Backend>(t: Tensor<B, 3>) -> Tensor<Flex, 3> {
    Tensor::from_data(t.into_data(), &Default::default())
}

#[test]
fn fused_matches_composed_in_f32() {
    for shared in [false, true] {
        let fused = attention::<Flex>(shared, DType::F32);
        let composed = on_flex(attention::<NdArray>(shared, DType::F32));
        assert_close(fused, composed, F32_TOLERANCE, "attention, f32");
    }
}

/// `softmax(round(q) round(k)^T * scale + mask) round(v)` per head, in `f64`, probabilities
/// rounded to bf16 before the second product.
fn bf16_reference() -> Tensor<Flex, 3> {
    let [q, k, v] = operands::<Flex>().map(|t| t.into_data().to_vec::<f32>().expect("f32"));
    let mask = mask_bias::<Flex>(false).into_data().to_vec::<f32>().expect("f32");
    let round = |x: f32| bf16::from_f32(x).to_f64();
    let head_dim = HIDDEN / HEADS;
    let mut out = vec![0f32; BATCH * QUERIES * HIDDEN];
    for b in 0..BATCH {
        for h in 0..HEADS {
            for i in 0..QUERIES {
                let logits: Vec<f64> = (0..KEYS)
                    .map(|j| {
                        let dot: f64 = (0..head_dim)
                            .map(|d| {
                                round(q[(b * QUERIES + i) * HIDDEN + h * head_dim + d])
                                    * round(k[(b * KEYS + j) * HIDDEN + h * head_dim + d])
                            })
                            .sum();
                        ((dot as f32) * SCALE as f32 + mask[b * KEYS + j]) as f64
                    })
                    .collect();
                let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for d in 0..head_dim {
                    let value: f64 = (0..KEYS)
                        .map(|j| {
                            round((weights[j] / total) as f32)
                                * round(v[(b * KEYS + j) * HIDDEN + h * head_dim + d])
                        })
                        .sum();
                    out[(b * QUERIES + i) * HIDDEN + h * head_dim + d] = value as f32;
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(out, [BATCH, QUERIES, HIDDEN]), &Default::default())
}

#[test]
fn bf16_products_match_reference_and_stay_close_to_f32() {
    let bf16_out = attention::<Flex>(false, DType::BF16);
    assert_close(bf16_out.clone(), bf16_reference(), BF16_REFERENCE_TOLERANCE, "bf16 attention");
    let f32_out = attention::<Flex>(false, DType::F32);
    let moved = (bf16_out.clone() - f32_out.clone()).abs().max().into_scalar();
    assert!(moved > 0.0, "bf16 products changed nothing: the bf16 path was not taken");
    assert_close(bf16_out, f32_out, BF16_AGAINST_F32_TOLERANCE, "bf16 against f32 attention");
}
