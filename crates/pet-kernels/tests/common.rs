//! Shared helpers: seeded inputs, and closeness with a named tolerance.

use std::sync::{Mutex, PoisonError};

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

/// The training backend the fused kernels serve.
pub type Train = Autodiff<Flex>;

/// Held while a test seeds a backend's RNG and draws from it: the RNGs are process-wide and the
/// tests run on parallel threads, so another test could otherwise draw between the two.
static RNG: Mutex<()> = Mutex::new(());

/// Runs `f` holding the RNG lock (not reentrant: `f` must not call [`input`]).
pub fn with_rng<R>(f: impl FnOnce() -> R) -> R {
    let _held = RNG.lock().unwrap_or_else(PoisonError::into_inner);
    f()
}

/// A seeded tensor of `shape` with values from `distribution`.
pub fn input<B: Backend, const D: usize>(
    shape: [usize; D],
    distribution: Distribution,
    seed: u64,
) -> Tensor<B, D> {
    let device = Default::default();
    with_rng(|| {
        B::seed(&device, seed);
        Tensor::random(shape, distribution, &device)
    })
}

/// Asserts `|a - b| <= tolerance * (1 + |b|)` element-wise.
pub fn assert_close<B: Backend, const D: usize>(
    a: Tensor<B, D>,
    b: Tensor<B, D>,
    tolerance: f32,
    what: &str,
) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes differ");
    let a: Vec<f32> = a.into_data().to_vec().expect("f32 values");
    let b: Vec<f32> = b.into_data().to_vec().expect("f32 values");
    let worst =
        a.iter().zip(&b).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0f32, f32::max);
    assert!(worst <= tolerance, "{what}: worst scaled difference {worst:e} > {tolerance:e}");
}
