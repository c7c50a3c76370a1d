//! Fused inference attention (burn-flex with `pet_gemm`'s kernel) against Burn's composed
//! operations (ndarray) in `f32`, and against an `f64` reference of the bf16 numerics; with a
//! score bias and a causal mask, values and gradients against a composition of Burn operations.
//! Without a kernel (a CPU without AVX2, or `PET_CPU_LEVEL=none`) every path is composed and
//! these comparisons check the composed path against the references.

use burn::backend::{Autodiff, Flex, NdArray};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Distribution, Tensor, TensorData, bf16};
use pet_kernels::AttentionOptions;

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

fn on_flex<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<Flex, D> {
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

/// A score bias, a causal mask and a prefix, in one combination.
#[derive(Clone, Copy, Debug)]
struct Shaped {
    /// Rows of the score bias: 0 (none), 1 (shared by the batch) or [`BATCH`].
    bias_rows: usize,
    causal: bool,
    /// The first [`PREFIX`] keys and values passed as a (per-element) prefix.
    prefix: bool,
}

/// Every combination with a bias or a causal mask (the plain one is tested above); [`QUERIES`]
/// < [`KEYS`], so query `i` sees `KEYS - QUERIES + i + 1` keys under the causal mask.
fn shaped_cases() -> Vec<Shaped> {
    let mut cases = Vec::new();
    for bias_rows in [0, 1, BATCH] {
        for causal in [false, true] {
            for prefix in [false, true] {
                if bias_rows > 0 || causal {
                    cases.push(Shaped { bias_rows, causal, prefix });
                }
            }
        }
    }
    cases
}

/// The inputs of one call: `q`, keys and values after the prefix, the prefix, the score bias.
struct Inputs<B: Backend> {
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    prefix: Option<(Tensor<B, 3>, Tensor<B, 3>)>,
    bias: Option<Tensor<B, 4>>,
}

/// The seeded inputs of `case`, each a fresh tensor (a leaf under autodiff).
fn shaped_inputs<B: Backend>(case: Shaped) -> Inputs<B> {
    let [q, k, v] = operands::<B>();
    let rows = |t: Tensor<B, 3>, from: usize, to: usize| {
        let values = t.slice([0..BATCH, from..to, 0..HIDDEN]).into_data();
        Tensor::from_data(values, &Default::default())
    };
    let (k, v, prefix) = if case.prefix {
        let prefix = (rows(k.clone(), 0, PREFIX), rows(v.clone(), 0, PREFIX));
        (rows(k, PREFIX, KEYS), rows(v, PREFIX, KEYS), Some(prefix))
    } else {
        (k, v, None)
    };
    let bias_shape = [case.bias_rows, HEADS, QUERIES, KEYS];
    let bias = (case.bias_rows > 0).then(|| input(bias_shape, Distribution::Normal(0.0, 2.0), 26));
    Inputs { q, k, v, prefix, bias }
}

/// `attention_with` on `inputs`.
fn shaped_fused<B: Backend>(inputs: &Inputs<B>, case: Shaped, dropout_prob: f64) -> Tensor<B, 3> {
    let mut options =
        AttentionOptions::new(HEADS, SCALE).with_causal(case.causal).with_dropout(dropout_prob);
    if let Some(bias) = &inputs.bias {
        options = options.with_bias(bias.clone());
    }
    let Inputs { q, k, v, prefix, .. } = inputs;
    pet_kernels::attention_with(
        q.clone(),
        k.clone(),
        v.clone(),
        prefix.clone(),
        mask_bias(false),
        options,
    )
}

/// `0` where query `i` may see key `j` (`j <= i + KEYS - QUERIES`), `-inf` elsewhere,
/// `[1, 1, QUERIES, KEYS]`.
fn causal_bias<B: Backend>() -> Tensor<B, 4> {
    let bias: Vec<f32> = (0..QUERIES * KEYS)
        .map(|at| if at % KEYS <= at / KEYS + KEYS - QUERIES { 0.0 } else { f32::NEG_INFINITY })
        .collect();
    Tensor::from_data(TensorData::new(bias, [1, 1, QUERIES, KEYS]), &Default::default())
}

/// The same attention written out in Burn operations and pet-kernels' probabilities and dropout:
/// prefix joined, `q k^T * scale + bias + causal`, softmax with the key mask, dropout, `* v`.
fn shaped_composed<B: Backend>(
    inputs: &Inputs<B>,
    case: Shaped,
    dropout_prob: f64,
) -> Tensor<B, 3> {
    let Inputs { q, k, v, prefix, bias } = inputs;
    let (k, v) = match prefix {
        Some((pk, pv)) => (
            Tensor::cat(vec![pk.clone(), k.clone()], 1),
            Tensor::cat(vec![pv.clone(), v.clone()], 1),
        ),
        None => (k.clone(), v.clone()),
    };
    let heads = |t: Tensor<B, 3>| pet_kernels::split_heads(t, HEADS);
    let mut scores = heads(q.clone()).matmul(heads(k).swap_dims(2, 3)) * SCALE;
    if let Some(bias) = bias {
        scores = scores + bias.clone();
    }
    if case.causal {
        scores = scores + causal_bias();
    }
    let probs = pet_kernels::attention_probs(scores, mask_bias(false), 1.0);
    let probs = pet_kernels::dropout(probs, dropout_prob);
    pet_kernels::merge_heads(probs.matmul(heads(v)))
}

#[test]
fn score_bias_and_causal_mask_match_composed_at_inference() {
    for case in shaped_cases() {
        let fused = shaped_fused(&shaped_inputs::<Flex>(case), case, 0.0);
        let ndarray = on_flex(shaped_fused(&shaped_inputs::<NdArray>(case), case, 0.0));
        let composed = on_flex(shaped_composed(&shaped_inputs::<NdArray>(case), case, 0.0));
        assert_close(fused.clone(), ndarray, F32_TOLERANCE, &format!("{case:?} against ndarray"));
        assert_close(fused, composed, F32_TOLERANCE, &format!("{case:?} against composed"));
    }
}

/// The output and the gradients under `(out * weights).sum()`: `q`, `k`, `v`, then the prefix's
/// keys and values, then the bias.
struct ShapedRun {
    out_and_3d: Vec<(&'static str, Tensor<Flex, 3>)>,
    bias: Option<Tensor<Flex, 4>>,
}

/// One training run of `case` on `B`, fused (`attention_with`) or composed, the backend seeded
/// first (the dropout mask's seed is drawn from it).
fn shaped_training<B: AutodiffBackend>(case: Shaped, dropout_prob: f64, fused: bool) -> ShapedRun {
    let weights = input::<B, 3>([BATCH, QUERIES, HIDDEN], Distribution::Normal(0.0, 1.0), 24);
    let Inputs { q, k, v, prefix, bias } = shaped_inputs::<B>(case);
    let inputs = Inputs {
        q: q.require_grad(),
        k: k.require_grad(),
        v: v.require_grad(),
        prefix: prefix.map(|(pk, pv)| (pk.require_grad(), pv.require_grad())),
        bias: bias.map(Tensor::require_grad),
    };
    let out = with_rng(|| {
        B::seed(&Default::default(), 25);
        if fused {
            shaped_fused(&inputs, case, dropout_prob)
        } else {
            shaped_composed(&inputs, case, dropout_prob)
        }
    });
    let grads = (out.clone() * weights).sum().backward();
    let grad = |t: &Tensor<B, 3>| on_flex(t.grad(&grads).expect("tracked input"));
    let mut out_and_3d = vec![
        ("output", on_flex(out.inner())),
        ("dq", grad(&inputs.q)),
        ("dk", grad(&inputs.k)),
        ("dv", grad(&inputs.v)),
    ];
    if let Some((pk, pv)) = &inputs.prefix {
        out_and_3d.extend([("d prefix keys", grad(pk)), ("d prefix values", grad(pv))]);
    }
    let bias = inputs.bias.map(|bias| on_flex(bias.grad(&grads).expect("tracked bias")));
    ShapedRun { out_and_3d, bias }
}

fn assert_runs_close(a: ShapedRun, b: ShapedRun, what: &str) {
    for ((name, a), (_, b)) in a.out_and_3d.into_iter().zip(b.out_and_3d) {
        assert_close(a, b, TRAINING_TOLERANCE, &format!("{name}, {what}"));
    }
    match (a.bias, b.bias) {
        (Some(a), Some(b)) => assert_close(a, b, TRAINING_TOLERANCE, &format!("d bias, {what}")),
        (None, None) => {}
        _ => panic!("{what}: a bias gradient on one side only"),
    }
}

#[test]
fn score_bias_and_causal_mask_train_as_composed_with_and_without_dropout() {
    for case in shaped_cases() {
        for dropout_prob in [0.0, 0.3] {
            let fused = shaped_training::<Train>(case, dropout_prob, true);
            let composed = shaped_training::<Train>(case, dropout_prob, false);
            assert_runs_close(fused, composed, &format!("{case:?}, dropout {dropout_prob}"));
        }
        let fused = shaped_training::<Train>(case, 0.0, true);
        let ndarray = shaped_training::<Autodiff<NdArray>>(case, 0.0, true);
        assert_runs_close(fused, ndarray, &format!("{case:?} against ndarray"));
    }
}

#[test]
fn a_shared_bias_gets_the_batch_sum_of_the_per_element_gradients() {
    let shared = Shaped { bias_rows: 1, causal: true, prefix: true };
    let per_element = Shaped { bias_rows: BATCH, ..shared };
    let shared_run = shaped_training::<Train>(shared, 0.0, true);
    // The shared bias repeated for every element: the same scores, one gradient per element.
    let mut inputs = shaped_inputs::<Train>(per_element);
    let bias = shaped_inputs::<Train>(shared).bias.expect("a shared bias");
    let bias = Tensor::from_data(bias.repeat_dim(0, BATCH).into_data(), &Default::default());
    inputs.bias = Some(Tensor::require_grad(bias));
    let weights = input::<Train, 3>([BATCH, QUERIES, HIDDEN], Distribution::Normal(0.0, 1.0), 24);
    let out = shaped_fused(&inputs, per_element, 0.0);
    let grads = (out * weights).sum().backward();
    let per_element_grad = inputs.bias.expect("a bias").grad(&grads).expect("tracked bias");
    let summed = on_flex(per_element_grad.sum_dim(0));
    let shared_grad = shared_run.bias.expect("a shared bias gradient");
    assert_close(shared_grad, summed, TRAINING_TOLERANCE, "shared bias gradient");
}

/// The hand-checked cases: means and weighted sums of a few values, in `f32`.
const HAND_CHECKED_TOLERANCE: f32 = 1e-5;

/// The most gradient a hidden key may get: none on the fused path; on the composed one its
/// probability is `exp`'s floor, `e^-87` (~1.6e-38), where Burn's ndarray gives 0.
const HIDDEN_KEY_GRADIENT: f32 = 1e-30;

/// Queries that make every score 0, and queries that do not.
const ZERO_QUERIES: [[f32; 2]; 3] = [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]];
const SOME_QUERIES: [[f32; 2]; 3] = [[0.5, 1.0], [-1.0, 0.25], [0.75, -0.5]];

/// One head of width 2, three queries over four keys (so query `i` sees keys `0..=i + 1`); the
/// last key and value are given.
fn causal_case<B: Backend>(
    queries: [[f32; 2]; 3],
    last_key: [f32; 2],
    last_value: [f32; 2],
) -> [Tensor<B, 3>; 3] {
    let device = Default::default();
    let k = [[0.5, -1.0], [2.0, 0.0], [-0.5, 1.5], last_key];
    let v = [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], last_value];
    let rows = |rows: &[[f32; 2]]| {
        let values: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(values, [1, rows.len(), 2]), &device)
    };
    [rows(&queries), rows(&k), rows(&v)]
}

fn causal_attention<B: Backend>([q, k, v]: [Tensor<B, 3>; 3]) -> Tensor<B, 3> {
    let mask = Tensor::zeros([1, 4], &Default::default());
    let options = AttentionOptions::new(1, 1.0).with_causal(true);
    pet_kernels::attention_with(q, k, v, None, mask, options)
}

fn values_of<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec().expect("f32 values")
}

/// With all scores 0 each query averages the values it sees; changing the last key and value
/// moves only the last query's output.
fn check_causal<B: Backend>(what: &str) {
    let (key, value) = ([1.0, 1.0], [4.0, 40.0]);
    // Means of the values of keys 0..=1, 0..=2, 0..=3.
    let expected = [1.5, 15.0, 2.0, 20.0, 2.5, 25.0];
    let out = values_of(causal_attention(causal_case::<B>(ZERO_QUERIES, key, value)));
    for (o, e) in out.iter().zip(expected) {
        assert!((o - e).abs() < HAND_CHECKED_TOLERANCE, "{what}: {out:?}, expected {expected:?}");
    }
    let before = values_of(causal_attention(causal_case::<B>(SOME_QUERIES, key, value)));
    let moved = causal_case::<B>(SOME_QUERIES, [9.0, -7.0], [100.0, 1000.0]);
    let after = values_of(causal_attention(moved));
    assert_eq!(after[..4], before[..4], "{what}: an earlier query saw the last key");
    assert!((after[4] - before[4]).abs() > 1.0, "{what}: the last query did not see it");
}

#[test]
fn a_causal_query_never_attends_to_a_later_key() {
    check_causal::<Flex>("flex");
    check_causal::<NdArray>("ndarray");
    check_causal::<Train>("flex autodiff");
    // Under autodiff the first two queries pass no gradient to the last key and value (the
    // composed softmax's `exp` gives a masked key ~1.6e-38 at most, the fused one exactly 0).
    let inputs = causal_case::<Train>(SOME_QUERIES, [1.0, 1.0], [4.0, 40.0]);
    let [q, k, v] = inputs.map(Tensor::require_grad);
    let out = causal_attention([q, k.clone(), v.clone()]);
    let grads = out.slice([0..1, 0..2, 0..2]).sum().backward();
    for (name, t) in [("k", k), ("v", v)] {
        let grad = values_of(t.grad(&grads).expect("tracked input"));
        assert!(
            grad[6..].iter().all(|g| g.abs() < HIDDEN_KEY_GRADIENT),
            "d{name} of the last key: {grad:?}"
        );
        assert!(grad[..6].iter().any(|g| g.abs() > 1e-3), "d{name} of the keys seen: {grad:?}");
    }
}

#[test]
fn a_score_bias_weights_keys_by_its_exponential() {
    // All scores 0; a bias of ln 3 on key 0 and 0 on key 1 weights their values 3 : 1.
    let device = Default::default();
    let q = Tensor::<Flex, 3>::zeros([1, 1, 2], &device);
    let k = Tensor::<Flex, 3>::zeros([1, 2, 2], &device);
    let v = Tensor::from_data(TensorData::new(vec![4.0f32, 8.0, 0.0, 4.0], [1, 2, 2]), &device);
    let bias = TensorData::new(vec![3f32.ln(), 0.0], [1, 1, 1, 2]);
    let options = AttentionOptions::new(1, 1.0).with_bias(Tensor::from_data(bias, &device));
    let mask = Tensor::zeros([1, 2], &device);
    let out = values_of(pet_kernels::attention_with(q, k, v, None, mask, options));
    let close = |a: f32, b: f32| (a - b).abs() < HAND_CHECKED_TOLERANCE;
    assert!(close(out[0], 3.0) && close(out[1], 7.0), "{out:?}");
}
