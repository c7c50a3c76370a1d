//! Fused inference attention (burn-flex with `pet_gemm`'s kernel) against Burn's composed
//! operations (ndarray) in `f32`, and against an `f64` reference of the bf16 numerics.

use burn::backend::{Autodiff, Flex, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Distribution, Tensor, TensorData, bf16};

use crate::common::{Train, assert_close, input, with_rng};

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
    pet_kernels::attention(q, k, v, None, mask_bias(shared_mask), HEADS, SCALE, products, 0.0)
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

/// Under autodiff the fused operation and the composed one (Burn's head split and matmuls with
/// pet-kernels' probabilities and dropout) compute the same `f32` values.
const TRAINING_TOLERANCE: f32 = 2e-5;

/// Output and the gradients of `q`, `k`, `v` under `(out * weights).sum()`, with the backend
/// seeded first (the dropout mask's seed is drawn from it).
fn training_run(fused: bool, dropout_prob: f64) -> [Tensor<Flex, 3>; 4] {
    let weights = input::<Train, 3>([BATCH, QUERIES, HIDDEN], Distribution::Normal(0.0, 1.0), 24);
    let [q, k, v] = operands::<Train>().map(|t| t.require_grad());
    let mask = mask_bias::<Train>(false);
    let out = with_rng(|| {
        Train::seed(&Default::default(), 25);
        if fused {
            pet_kernels::attention(
                q.clone(),
                k.clone(),
                v.clone(),
                None,
                mask,
                HEADS,
                SCALE,
                DType::F32,
                dropout_prob,
            )
        } else {
            let heads = |t: Tensor<Train, 3>| pet_kernels::split_heads(t, HEADS);
            let scores = heads(q.clone()).matmul(heads(k.clone()).swap_dims(2, 3));
            let probs = pet_kernels::attention_probs(scores, mask, SCALE);
            let probs = pet_kernels::dropout(probs, dropout_prob);
            pet_kernels::merge_heads(probs.matmul(heads(v.clone())))
        }
    });
    let grads = (out.clone() * weights).sum().backward();
    let grad = |t: &Tensor<Train, 3>| t.grad(&grads).expect("tracked input");
    [out.inner(), grad(&q), grad(&k), grad(&v)]
}

#[test]
fn training_matches_composed_values_and_gradients_with_and_without_dropout() {
    for dropout_prob in [0.0, 0.3] {
        let fused = training_run(true, dropout_prob);
        let composed = training_run(false, dropout_prob);
        for (what, (a, b)) in
            ["output", "dq", "dk", "dv"].iter().zip(fused.into_iter().zip(composed))
        {
            assert_close(a, b, TRAINING_TOLERANCE, &format!("{what}, dropout {dropout_prob}"));
        }
    }
}

#[test]
fn training_without_dropout_matches_ndarray() {
    let fused = training_run(true, 0.0);
    let weights =
        input::<Autodiff<NdArray>, 3>([BATCH, QUERIES, HIDDEN], Distribution::Normal(0.0, 1.0), 24);
    let [q, k, v] = operands::<Autodiff<NdArray>>().map(|t| t.require_grad());
    let out = pet_kernels::attention(
        q.clone(),
        k.clone(),
        v.clone(),
        None,
        mask_bias(false),
        HEADS,
        SCALE,
        DType::F32,
        0.0,
    );
    let grads = (out.clone() * weights).sum().backward();
    let grad = |t: &Tensor<Autodiff<NdArray>, 3>| on_flex(t.grad(&grads).expect("tracked input"));
    let composed = [on_flex(out.inner()), grad(&q), grad(&k), grad(&v)];
    for (what, (a, b)) in ["output", "dq", "dk", "dv"].iter().zip(fused.into_iter().zip(composed)) {
        assert_close(a, b, TRAINING_TOLERANCE, &format!("{what} against ndarray"));
    }
}

/// Keys `0..PREFIX` of the operands as a prefix: shared (`[1, PREFIX, hidden]`, element 0's) or
/// per batch element.
const PREFIX: usize = 5;

/// Attention with the first [`PREFIX`] keys and values passed as a prefix; with `shared`, every
/// batch element gets element 0's prefix (so the joined reference uses that too).
fn with_prefix<B: Backend>(shared: bool) -> [Tensor<B, 3>; 2] {
    let [q, k, v] = operands::<B>();
    let rows = if shared { 1 } else { BATCH };
    let split = |t: Tensor<B, 3>| {
        let prefix = t.clone().slice([0..rows, 0..PREFIX, 0..HIDDEN]);
        let joined = Tensor::cat(
            vec![
                prefix.clone().expand([BATCH, PREFIX, HIDDEN]),
                t.clone().slice([0..BATCH, PREFIX..KEYS, 0..HIDDEN]),
            ],
            1,
        );
        (prefix, t.slice([0..BATCH, PREFIX..KEYS, 0..HIDDEN]), joined)
    };
    let ((pk, k_rest, k_joined), (pv, v_rest, v_joined)) = (split(k), split(v));
    let mask = || mask_bias::<B>(false);
    let split_call = pet_kernels::attention(
        q.clone(),
        k_rest,
        v_rest,
        Some((pk, pv)),
        mask(),
        HEADS,
        SCALE,
        DType::F32,
        0.0,
    );
    let joined_call =
        pet_kernels::attention(q, k_joined, v_joined, None, mask(), HEADS, SCALE, DType::F32, 0.0);
    [split_call, joined_call]
}

#[test]
fn a_prefix_read_in_place_matches_joined_keys() {
    for shared in [true, false] {
        let [fused_split, fused_joined] = with_prefix::<Flex>(shared);
        assert_close(fused_split.clone(), fused_joined, F32_TOLERANCE, "prefix in place, flex");
        let [composed_split, _] = with_prefix::<NdArray>(shared);
        assert_close(
            fused_split,
            on_flex(composed_split),
            F32_TOLERANCE,
            "prefix, against ndarray",
        );
    }
}
