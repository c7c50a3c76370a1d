//! Attention probabilities: fused against `softmax(scores * scale + mask_bias, 3)` composed
//! from Burn operations, with Hugging Face's `f32::MIN` mask bias.

use burn::backend::{Flex, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};

use crate::common::{Train, assert_close, input};

/// The fused `exp` is within 2e-7 of libm's and the row sums are accumulated in another order:
/// probabilities differ by under 1e-7 here, gradients (compared at unit scale) by under 3e-7.
const TOLERANCE: f32 = 1e-6;

/// `1 / sqrt(64)`, BERT's head size.
const SCALE: f64 = 0.125;

/// A scores shape and the batch element whose keys are all masked, if any.
struct Case {
    shape: [usize; 4],
    fully_masked: Option<usize>,
}

/// 144 keys = 16 prefix + 128 tokens; 37 keys leave a remainder after every vector width.
const CASES: [Case; 2] = [
    Case { shape: [2, 3, 5, 144], fully_masked: None },
    Case { shape: [3, 2, 4, 37], fully_masked: Some(1) },
];

/// Raw `q . k` of a 64-wide head: around `N(0, 8)`, so `N(0, 1)` after scaling.
fn scores<B: Backend>(case: &Case, seed: u64) -> Tensor<B, 4> {
    input(case.shape, Distribution::Normal(0.0, 8.0), seed)
}

/// Padding masked at the end (a different length per batch element), some keys masked in the
/// middle, and the `fully_masked` element masked everywhere.
fn mask_bias<B: Backend>(case: &Case) -> Tensor<B, 2> {
    let [batch, _, _, keys] = case.shape;
    let masked = |b: usize, k: usize| {
        Some(b) == case.fully_masked || k + 3 * b + 2 >= keys || (k * 7 + b).is_multiple_of(11)
    };
    let bias: Vec<f32> = (0..batch)
        .flat_map(|b| (0..keys).map(move |k| (b, k)))
        .map(|(b, k)| if masked(b, k) { f32::MIN } else { 0.0 })
        .collect();
    Tensor::from_data(TensorData::new(bias, [batch, keys]), &Default::default())
}

fn composed<B: Backend>(scores: Tensor<B, 4>, mask_bias: Tensor<B, 2>) -> Tensor<B, 4> {
    burn::tensor::activation::softmax(scores * SCALE + mask_bias.unsqueeze_dims::<4>(&[1, 2]), 3)
}

/// Every probability is finite; rows sum to 1; masked keys get (next to) nothing unless the
/// whole row is masked, in which case the row is uniform.
fn check_rows(probs: Tensor<Flex, 4>, case: &Case) {
    let [batch, heads, queries, keys] = case.shape;
    let mask: Vec<f32> = mask_bias::<Flex>(case).into_data().to_vec().expect("f32 values");
    let probs: Vec<f32> = probs.into_data().to_vec().expect("f32 values");
    for (row, probs) in probs.chunks(keys).enumerate() {
        let b = row / (heads * queries);
        assert!(b < batch);
        assert!(probs.iter().all(|p| p.is_finite()), "row {row} is not finite");
        let sum: f32 = probs.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "row {row} sums to {sum}");
        let bias = &mask[b * keys..][..keys];
        for (&p, &bias) in probs.iter().zip(bias) {
            if Some(b) == case.fully_masked {
                assert!((p - 1.0 / keys as f32).abs() < 1e-7, "row {row} is not uniform");
            } else if bias != 0.0 {
                assert!(p < 1e-30, "a masked key in row {row} has probability {p}");
            }
        }
    }
}

#[test]
fn inference_matches_composed_softmax() {
    for (seed, case) in CASES.iter().enumerate() {
        let seed = seed as u64;
        let fused = pet_kernels::attention_probs(
            scores::<Flex>(case, seed),
            mask_bias::<Flex>(case),
            SCALE,
        );
        let want = composed(scores::<Flex>(case, seed), mask_bias::<Flex>(case));
        check_rows(want.clone(), case);
        check_rows(fused.clone(), case);
        assert_close(fused, want, TOLERANCE, &format!("attention probs {:?}", case.shape));
    }
}

#[test]
fn forward_and_gradient_match_under_autodiff() {
    for (seed, case) in CASES.iter().enumerate() {
        let seed = 10 * seed as u64;
        let weights = input::<Train, 4>(case.shape, Distribution::Normal(0.0, 1.0), seed + 1);
        let run = |fused: bool| {
            let scores = scores::<Train>(case, seed).require_grad();
            let mask = mask_bias::<Train>(case);
            let probs = if fused {
                pet_kernels::attention_probs(scores.clone(), mask, SCALE)
            } else {
                composed(scores.clone(), mask)
            };
            let grads = (probs.clone() * weights.clone()).sum().backward();
            (probs.inner(), scores.grad(&grads).expect("scores are tracked"))
        };
        let (probs, dscores) = run(true);
        let (want_probs, want_dscores) = run(false);
        check_rows(probs.clone(), case);
        let what = format!("{:?}", case.shape);
        assert_close(probs, want_probs, TOLERANCE, &format!("attention probs forward {what}"));
        // The gradient is around `SCALE / keys`: compare it at unit scale.
        let unit = case.shape[3] as f64 / SCALE;
        assert_close(
            dscores * unit,
            want_dscores * unit,
            TOLERANCE,
            &format!("scores gradient (x keys / scale) {what}"),
        );
    }
}

#[test]
fn a_mask_of_one_row_is_shared_by_the_batch() {
    let case = &CASES[0];
    let mask = || mask_bias::<Flex>(case).narrow(0, 0, 1);
    let fused = pet_kernels::attention_probs(scores::<Flex>(case, 5), mask(), SCALE);
    let want = composed(scores::<Flex>(case, 5), mask());
    assert_close(fused, want, TOLERANCE, "attention probs with a shared mask");
}

#[test]
fn other_backends_compose_burn_ops() {
    let case = &CASES[1];
    let fused =
        pet_kernels::attention_probs(scores::<NdArray>(case, 3), mask_bias::<NdArray>(case), SCALE);
    let want = composed(scores::<NdArray>(case, 3), mask_bias::<NdArray>(case));
    assert_close(fused, want, 0.0, "ndarray attention probs");
}
