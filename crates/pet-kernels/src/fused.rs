//! A fused kernel pair as one autodiff operation on `Autodiff<Flex>`: the forward runs the fused
//! kernel on the inner tensors, the backward its fused derivative, and nothing in between is
//! recorded.

use std::fmt::Debug;

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_flex::FlexTensor;

use crate::dispatch::{FlexAutodiff, contiguous};

/// A differentiable operation of `N` float inputs with a fused CPU forward and backward.
pub trait FusedOp<const N: usize>: Debug + Send + Sync + Sized + 'static {
    /// What the backward keeps from the forward.
    type Saved: Clone + Send + Debug + 'static;

    /// The output, and what the backward needs, from contiguous `f32` inputs.
    fn forward(&self, inputs: [FlexTensor; N]) -> (FlexTensor, Self::Saved);

    /// The gradients of the inputs whose `wanted` flag is set, from the output's gradient
    /// (contiguous); `None` for the others.
    fn backward(
        &self,
        saved: Self::Saved,
        grad: FlexTensor,
        wanted: [bool; N],
    ) -> [Option<FlexTensor>; N];
}

#[derive(Debug)]
struct Node<O>(O);

impl<O: FusedOp<N>, const N: usize> Backward<Flex, N> for Node<O> {
    type State = O::Saved;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let wanted = ops.parents.each_ref().map(Option::is_some);
        let input_grads = self.0.backward(ops.state, grad, wanted);
        for (parent, input_grad) in ops.parents.into_iter().zip(input_grads) {
            if let (Some(parent), Some(input_grad)) = (parent, input_grad) {
                grads.register::<Flex>(parent.id, input_grad);
            }
        }
    }
}

/// Runs `op` forward on burn-flex without autodiff.
pub fn infer<O: FusedOp<N>, const N: usize>(op: &O, inputs: [FlexTensor; N]) -> FlexTensor {
    op.forward(inputs.map(contiguous)).0
}

/// Runs `op` as one operation of the autodiff graph.
pub fn record<O: FusedOp<N>, const N: usize>(
    op: O,
    inputs: [FloatTensor<FlexAutodiff>; N],
) -> FloatTensor<FlexAutodiff> {
    let nodes = inputs.each_ref().map(|input| input.node.clone());
    let (output, saved) = op.forward(inputs.map(|input| contiguous(input.primitive)));
    match Node(op).prepare::<NoCheckpointing>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(saved, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// The autodiff primitive of a tensor.
pub fn primitive<const D: usize>(tensor: Tensor<FlexAutodiff, D>) -> FloatTensor<FlexAutodiff> {
    tensor.into_primitive().tensor()
}

/// Wraps an autodiff primitive.
pub fn wrap<const D: usize>(tensor: FloatTensor<FlexAutodiff>) -> Tensor<FlexAutodiff, D> {
    Tensor::from_primitive(TensorPrimitive::Float(tensor))
}
