//! Moving attention heads between `[batch, seq, heads * head_dim]` (what linears read and write)
//! and `[batch, heads, seq, head_dim]` (what the per-head products read and write).
//!
//! Burn expresses both as `reshape` + `swap_dims`, views that the next contiguous consumer
//! copies through burn-flex's element-by-element strided walk; under autodiff the backward of
//! each view makes the same copy. Here both directions, and their backwards, are copies of whole
//! `head_dim` rows.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::dispatch::{Route, from_flex, recast, route, tensor_of, values};
use crate::fused::{FusedOp, infer, primitive, record, wrap};

/// `[batch, seq, heads * head_dim]` -> `[batch, heads, seq, head_dim]`. On burn-flex without
/// autodiff this stays a view (the products read strided operands directly); under autodiff it
/// is a copy whose backward is a copy too.
pub fn split_heads<B: Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    let [batch, seq, hidden] = x.dims();
    let head_dim = hidden / heads;
    match route(x) {
        Route::Autodiff(x) => {
            let op = SwapMiddle {
                input: [batch, seq, heads, head_dim],
                input_shape: vec![batch, seq, hidden],
                output_rank: 4,
            };
            recast(wrap::<4>(record(op, [primitive(x)])))
        }
        Route::Flex(x) => recast(x.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2)),
        Route::Composed(x) => x.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2),
    }
}

/// `[batch, heads, seq, head_dim]` -> `[batch, seq, heads * head_dim]`, contiguous.
pub fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [batch, heads, seq, head_dim] = x.dims();
    let op = SwapMiddle {
        input: [batch, heads, seq, head_dim],
        input_shape: vec![batch, heads, seq, head_dim],
        output_rank: 3,
    };
    match route(x) {
        Route::Flex(x) => recast(from_flex::<3>(infer(&op, [x.into_primitive().tensor()]))),
        Route::Autodiff(x) => recast(wrap::<3>(record(op, [primitive(x)]))),
        Route::Composed(x) => x.swap_dims(1, 2).reshape([batch, seq, heads * head_dim]),
    }
}

/// Swaps axes 1 and 2 of a contiguous `[outer, a, b, inner]` tensor, giving
/// `[outer, b, a, inner]` (merged into `[outer, b, a * inner]` when `output_rank` is 3).
#[derive(Debug)]
struct SwapMiddle {
    /// `[outer, a, b, inner]` of the input.
    input: [usize; 4],
    /// The input's own shape (`[outer, a, b * inner]` when it arrives merged), for its gradient.
    input_shape: Vec<usize>,
    /// 4: `[outer, b, a, inner]`; 3: `[outer, b, a * inner]`.
    output_rank: usize,
}

impl FusedOp<1> for SwapMiddle {
    type Saved = ();

    fn forward(&self, [x]: [FlexTensor; 1]) -> (FlexTensor, ()) {
        let [outer, a, b, inner] = self.input;
        let shape = match self.output_rank {
            3 => vec![outer, b, a * inner],
            _ => vec![outer, b, a, inner],
        };
        (tensor_of(swap_middle(values(&x), self.input), shape.into()), ())
    }

    fn backward(&self, _: (), grad: FlexTensor, _: [bool; 1]) -> [Option<FlexTensor>; 1] {
        let [outer, a, b, inner] = self.input;
        let dx = swap_middle(values(&grad), [outer, b, a, inner]);
        [Some(tensor_of(dx, self.input_shape.clone().into()))]
    }
}

/// The copy behind [`SwapMiddle`]: each output row `(o, j)` gathers `a` runs of `inner` values.
fn swap_middle(values: &[f32], [outer, a, b, inner]: [usize; 4]) -> Vec<f32> {
    assert_eq!(values.len(), outer * a * b * inner, "swap_middle: shape and values disagree");
    let mut out = vec![0.0; values.len()];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(a * inner).enumerate().for_each(|(row, out)| {
        let (o, j) = (row / b, row % b);
        for (i, run) in out.chunks_mut(inner).enumerate() {
            let start = ((o * a + i) * b + j) * inner;
            run.copy_from_slice(&values[start..start + inner]);
        }
    });
    out
}
