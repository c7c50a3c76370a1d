//! Dropout: the fused counter-based mask's statistics, exact kept and dropped values, the same
//! mask in the backward, reproducibility under `B::seed`, and Burn's composed path elsewhere.

use burn::backend::{Autodiff, Flex, NdArray};
use burn::nn::DropoutConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

use crate::common::{Train, input, with_rng};

const N: usize = 1000;

fn values<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor.into_data().to_vec().expect("f32 values")
}

/// `1 / (1 - prob)` as Burn's dropout computes it.
fn scale(prob: f64) -> f32 {
    (1.0 / (1.0 - prob)) as f32
}

/// Which elements of a dropout output of non-zero inputs were kept.
fn mask(y: &[f32]) -> Vec<bool> {
    y.iter().map(|&y| y != 0.0).collect()
}

/// `pet_kernels::dropout` holding the RNG lock, since its seed is drawn from the backend's RNG
/// and would otherwise race with [`calls_draw_new_masks_and_reseeding_reproduces_them`].
fn dropout<B: Backend, const D: usize>(x: Tensor<B, D>, prob: f64) -> Tensor<B, D> {
    with_rng(|| pet_kernels::dropout(x, prob))
}

/// Non-zero inputs, so that a zero output means a dropped element.
fn x<B: Backend>(seed: u64) -> Tensor<B, 2> {
    input([N, N], Distribution::Uniform(0.5, 1.5), seed)
}

#[test]
fn flex_without_autodiff_is_the_identity() {
    let x = x::<Flex>(1);
    let y = dropout(x.clone(), 0.5);
    assert_eq!(values(y), values(x));
}

#[test]
fn kept_fraction_and_values_under_autodiff() {
    for (prob, seed) in [(0.1, 2), (0.5, 3)] {
        let x = x::<Train>(seed);
        let xs = values(x.clone());
        let ys = values(dropout(x.clone(), prob));
        assert_eq!(values(x), xs, "the caller's tensor is left alone");
        let n = ys.len() as f64;
        let kept = ys.iter().filter(|&&y| y != 0.0).count() as f64;
        let sigma = (n * prob * (1.0 - prob)).sqrt();
        let deviation = (kept - n * (1.0 - prob)).abs() / sigma;
        assert!(deviation < 5.0, "prob {prob}: kept {kept} of {n}, {deviation:.2} sigma off");
        for (&x, &y) in xs.iter().zip(&ys) {
            assert!(y == 0.0 || y == x * scale(prob), "prob {prob}: {x} -> {y}");
        }
    }
}

#[test]
fn gradient_uses_the_forward_mask() {
    let prob = 0.3;
    let w = input::<Train, 2>([N, N], Distribution::Normal(0.0, 1.0), 4);
    let x = x::<Train>(5).require_grad();
    let y = dropout(x.clone(), prob);
    let grads = (y.clone() * w.clone()).sum().backward();
    let dx = values(x.grad(&grads).expect("x is tracked"));
    let keep = mask(&values(y));
    let want: Vec<f32> =
        values(w).iter().zip(&keep).map(|(&w, &k)| if k { w * scale(prob) } else { 0.0 }).collect();
    assert_eq!(dx, want);
}

#[test]
fn calls_draw_new_masks_and_reseeding_reproduces_them() {
    let device = Default::default();
    let x = Tensor::<Train, 2>::ones([N, N], &device);
    let masks = || {
        with_rng(|| {
            Train::seed(&device, 42);
            let first = mask(&values(pet_kernels::dropout(x.clone(), 0.5)));
            let second = mask(&values(pet_kernels::dropout(x.clone(), 0.5)));
            (first, second)
        })
    };
    let (first, second) = masks();
    let differing = first.iter().zip(&second).filter(|(a, b)| a != b).count();
    // Independent masks at prob 0.5 differ in half the elements.
    assert!((differing as f64 / (N * N) as f64 - 0.5).abs() < 0.01, "{differing} differ");
    assert_eq!(masks(), (first, second));
}

#[test]
fn zero_probability_is_the_identity() {
    let x = x::<Train>(6);
    let y = dropout(x.clone(), 0.0);
    assert_eq!(values(y), values(x));
}

#[test]
fn probability_one_drops_everything_with_zero_gradient() {
    // A property of the fused kernel (Burn's composed dropout scales by 1 / (1 - p)).
    if !pet_kernels::dispatch::kernels_on() {
        return eprintln!("skipped: pet's kernels are off (PET_CPU_LEVEL=none)");
    }
    let x = input::<Train, 2>([7, 33], Distribution::Normal(0.0, 1.0), 7).require_grad();
    let y = dropout(x.clone(), 1.0);
    let grads = y.clone().sum().backward();
    assert!(values(y).iter().all(|&y| y == 0.0));
    let dx = values(x.grad(&grads).expect("x is tracked"));
    assert!(dx.iter().all(|&g| g == 0.0));
}

#[test]
#[should_panic(expected = "Dropout probability should be between 0 and 1")]
fn probability_above_one_panics() {
    dropout(x::<Train>(8), 1.5);
}

#[test]
fn ndarray_takes_burns_composed_dropout() {
    type Nd = Autodiff<NdArray>;
    let device = Default::default();
    let run = |fused: bool| {
        // Seeded, then x and the mask drawn from the same stream in both runs.
        let (x, y) = with_rng(|| {
            Nd::seed(&device, 9);
            let x = Tensor::<Nd, 2>::random([40, 50], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            let y = if fused {
                pet_kernels::dropout(x.clone(), 0.4)
            } else {
                DropoutConfig::new(0.4).init().forward(x.clone())
            };
            (x, y)
        });
        let grads = y.clone().sum().backward();
        (values(y), values(x.grad(&grads).expect("x is tracked")))
    };
    assert_eq!(run(true), run(false));
    let plain = input::<NdArray, 2>([4, 5], Distribution::Normal(0.0, 1.0), 10);
    assert_eq!(values(dropout(plain.clone(), 0.4)), values(plain));
}

#[test]
fn in_place_and_copying_paths_agree() {
    let device = Default::default();
    let x = x::<Train>(11);
    let data = x.to_data();
    let run = |x: Tensor<Train, 2>| {
        with_rng(|| {
            Train::seed(&device, 12);
            values(pet_kernels::dropout(x, 0.25))
        })
    };
    // `x` is still held here, so the kernel writes a new buffer; a tensor of its own is
    // overwritten in place.
    let copied = run(x.clone());
    let in_place = run(Tensor::from_data(data, &device));
    assert_eq!(copied, in_place);
    assert!(copied.contains(&0.0));
}
