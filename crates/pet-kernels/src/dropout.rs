//! Dropout with a counter-based mask: the backward regenerates the mask from a 64-bit seed
//! instead of keeping a mask tensor.
//!
//! Burn's `Dropout` samples a Bernoulli tensor element by element through a ChaCha RNG, multiplies
//! and scales in two more passes, and autodiff keeps the mask for the backward. Here one seed is
//! drawn per call from the backend's own RNG (so `B::seed` keeps runs reproducible), and element
//! `i` is kept when the top 32 bits of `splitmix64(seed + i * GAMMA)` are at least
//! `round(prob * 2^32)`: one pass forward, one pass backward, nothing saved but three numbers.

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::ops::IntTensorOps;
use burn::tensor::{Distribution, IntDType, Shape, Tensor};
use burn_flex::FlexTensor;

use crate::dispatch::{Route, recast, route, tensor_of, values};
use crate::fused::{FusedOp, primitive, record, wrap};
use crate::parallel::{map_indexed, map_indexed_in_place};

/// Dropout with `burn::nn::Dropout::forward`'s semantics: the identity when the backend has no
/// autodiff or `prob` is 0; otherwise every element is kept with probability `1 - prob` and
/// scaled by `1 / (1 - prob)`, or set to 0.
///
/// Fused on `Autodiff<Flex>` (`f32`), with a mask regenerated from a seed in the backward;
/// `burn::nn::DropoutConfig::new(prob).init().forward(x)` on every other backend.
///
/// With `prob == 1` the fused path returns zeros (and zero gradients), where Burn's composed
/// dropout returns NaN (`0 * (1 / 0)`).
///
/// # Panics
/// When `prob` is not in `[0, 1]`, as Burn's `DropoutConfig::init` does.
pub fn dropout<B: Backend, const D: usize>(x: Tensor<B, D>, prob: f64) -> Tensor<B, D> {
    if !(0.0..=1.0).contains(&prob) {
        panic!("Dropout probability should be between 0 and 1, but got {prob}");
    }
    if !B::ad_enabled(&x.device()) || prob == 0.0 {
        return x;
    }
    match route(x) {
        // Unreachable in practice: burn-flex alone has no autodiff, handled above.
        Route::Flex(x) => recast(x),
        Route::Autodiff(x) => {
            let op = Dropout::new(prob, draw_seed());
            recast(wrap::<D>(record(op, [primitive(x)])))
        }
        Route::Composed(x) => burn::nn::DropoutConfig::new(prob).init().forward(x),
    }
}

/// One 64-bit seed from burn-flex's RNG, the one `Autodiff<Flex>::seed` seeds (it seeds the
/// inner backend).
pub(crate) fn draw_seed() -> u64 {
    let drawn = Flex::int_random(
        Shape::new([1]),
        Distribution::Default,
        &Default::default(),
        IntDType::U64,
    );
    drawn.as_slice::<u64>().and_then(|bits| bits.first().copied()).expect("one u64 drawn")
}

/// The SplitMix64 increment, `2^64 / phi` rounded to odd.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The `index`-th output of the SplitMix64 generator started at `seed` (Steele, Lea & Flood
/// 2014, Stafford's "Mix13" finalizer): `mix(seed + index * GAMMA)`.
///
/// SplitMix64 is counter-based by construction (its state is `seed + n * GAMMA`), passes
/// BigCrush, and distinct indices map to distinct outputs (the mix is a bijection); it is plain
/// wrapping arithmetic (two multiplies, three xor-shifts) that the compiler vectorizes, so the
/// mask costs a few instructions per element instead of a ChaCha block and a Bernoulli sample.
#[inline(always)]
fn splitmix64(seed: u64, index: u64) -> u64 {
    let z = seed.wrapping_add(index.wrapping_mul(GAMMA));
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Element `index` of `value`'s tensor after dropout: scaled when its hash clears `threshold`.
#[inline(always)]
fn masked(seed: u64, threshold: u64, scale: f32, index: usize, value: f32) -> f32 {
    let keep = splitmix64(seed, index as u64) >> 32 >= threshold;
    if keep { value * scale } else { 0.0 }
}

/// The dropout kernel pair. It holds everything the backward needs (seed, threshold, scale):
/// the saved state is empty and the mask is regenerated from the output gradient's indices.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dropout {
    /// Where this call's mask starts in the SplitMix64 stream.
    seed: u64,
    /// `round(prob * 2^32)`: element `i` is kept iff the top 32 bits of its hash are at least
    /// this, so with probability `1 - threshold / 2^32`. `2^32` (prob 1) keeps nothing.
    threshold: u64,
    /// `1 / (1 - prob)` as Burn's dropout computes it (in `f64`, then `f32`).
    scale: f32,
}

impl Dropout {
    pub(crate) fn new(prob: f64, seed: u64) -> Self {
        // prob is in [0, 1], so the threshold is in [0, 2^32].
        let threshold = (prob * 4_294_967_296.0).round() as u64;
        let scale = if prob < 1.0 { (1.0 / (1.0 - prob)) as f32 } else { 0.0 };
        Dropout { seed, threshold, scale }
    }

    /// Element `index` of a tensor after this dropout, `value` before: call inside
    /// [`crate::parallel::vectorized`].
    #[inline(always)]
    pub(crate) fn element(self, index: usize, value: f32) -> f32 {
        masked(self.seed, self.threshold, self.scale, index, value)
    }

    /// The gradient of an element before dropout from `grad`, its gradient after, given `kept`,
    /// its value after. A kept element whose value is 0 (it was 0 before) counts as dropped:
    /// where this feeds a product with the value before dropout, as the softmax backward does,
    /// its term is 0 either way, and no mask needs regenerating.
    #[inline(always)]
    pub(crate) fn through(self, kept: f32, grad: f32) -> f32 {
        if kept != 0.0 { grad * self.scale } else { 0.0 }
    }

    /// `values[i] * scale` where element `i` is kept, else 0: the forward on `x` and the
    /// backward on the output gradient, the same mask for both. In place when `tensor` (made
    /// [`contiguous`](crate::dispatch::contiguous)) owns its buffer alone, as the gradient
    /// usually does.
    fn apply(self, mut tensor: FlexTensor) -> FlexTensor {
        let Dropout { seed, threshold, scale } = self;
        let len = tensor.layout().shape().num_elements();
        if let Some(storage) = tensor.try_storage_mut::<f32>() {
            // Contiguous from offset 0: the tensor's elements are the buffer's first `len`.
            map_indexed_in_place(
                &mut storage[..len],
                #[inline(always)]
                move |i, v| masked(seed, threshold, scale, i, v),
            );
            return tensor;
        }
        let out = map_indexed(
            values(&tensor),
            #[inline(always)]
            move |i, v| masked(seed, threshold, scale, i, v),
        );
        tensor_of(out, tensor.layout().shape().clone())
    }
}

impl FusedOp<1> for Dropout {
    type Saved = ();

    fn forward(&self, [x]: [FlexTensor; 1]) -> (FlexTensor, ()) {
        (self.apply(x), ())
    }

    fn backward(&self, _: (), grad: FlexTensor, _: [bool; 1]) -> [Option<FlexTensor>; 1] {
        [Some(self.apply(grad))]
    }
}
