//! Splitting and merging attention heads: exact copies of Burn's `reshape` + `swap_dims`, values
//! and gradients.

use burn::backend::{Flex, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

use crate::common::{Train, assert_close, input};

/// Both directions only move values.
const EXACT: f32 = 0.0;

fn split_composed<B: Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    let [batch, seq, hidden] = x.dims();
    x.reshape([batch, seq, heads, hidden / heads]).swap_dims(1, 2)
}

fn merge_composed<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [batch, heads, seq, head_dim] = x.dims();
    x.swap_dims(1, 2).reshape([batch, seq, heads * head_dim])
}

#[test]
fn inference_matches_composed_views() {
    let x = input::<Flex, 3>([3, 5, 12], Distribution::Default, 1);
    let split = pet_kernels::split_heads(x.clone(), 4);
    assert_close(split.clone(), split_composed(x.clone(), 4), EXACT, "split");
    assert_close(pet_kernels::merge_heads(split), x, EXACT, "merge of split");
    let h = input::<Flex, 4>([2, 3, 7, 5], Distribution::Default, 2);
    assert_close(pet_kernels::merge_heads(h.clone()), merge_composed(h), EXACT, "merge");
}

#[test]
fn forward_and_gradients_match_under_autodiff() {
    let weights = input::<Train, 3>([3, 9, 12], Distribution::Default, 3);
    let run = |fused: bool| {
        let x = input::<Train, 3>([3, 9, 12], Distribution::Default, 4).require_grad();
        // Split, something per head that is not symmetric in the axes, merge.
        let scale = Tensor::<Train, 1>::from_floats([1.0, 2.0, 3.0, 4.0], &x.device())
            .reshape([1, 4, 1, 1]);
        let y = if fused {
            pet_kernels::merge_heads(pet_kernels::split_heads(x.clone(), 4) * scale)
        } else {
            merge_composed(split_composed(x.clone(), 4) * scale)
        };
        let grads = (y.clone() * weights.clone()).sum().backward();
        (y.inner(), x.grad(&grads).expect("x is tracked"))
    };
    let (y, dx) = run(true);
    let (want_y, want_dx) = run(false);
    assert_close(y, want_y, EXACT, "split, scale, merge");
    assert_close(dx, want_dx, EXACT, "its gradient");
}

#[test]
fn other_backends_compose_burn_ops() {
    let x = input::<NdArray, 3>([2, 3, 8], Distribution::Default, 5);
    let split = pet_kernels::split_heads(x.clone(), 2);
    assert_close(split.clone(), split_composed(x, 2), EXACT, "ndarray split");
    let merged = pet_kernels::merge_heads(split.clone());
    assert_close(merged, merge_composed(split), EXACT, "ndarray merge");
}
