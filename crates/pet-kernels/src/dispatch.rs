//! Which path a tensor takes: the fused CPU kernels on burn-flex (with or without autodiff), or
//! Burn's composed operations on every other backend.
//!
//! Burn has no specialization, so the choice is made by comparing types at run time: a
//! `Tensor<B, D>` whose `B` is `Flex` or `Autodiff<Flex>` is moved into that concrete type (a
//! checked [`Any`] downcast, no copy), handled there, and moved back.

use std::any::{Any, TypeId};

use burn::backend::{Autodiff, Flex};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, TensorPrimitive};
use burn_flex::FlexTensor;

/// The CPU backend with autodiff, as `pet` trains on it.
pub type FlexAutodiff = Autodiff<Flex>;

/// A tensor sorted by the path it takes.
pub enum Route<B: Backend, const D: usize> {
    /// burn-flex without autodiff (inference), `f32`.
    Flex(Tensor<Flex, D>),
    /// burn-flex under autodiff (training), `f32`.
    Autodiff(Tensor<FlexAutodiff, D>),
    /// Any other backend or element type: compose Burn operations.
    Composed(Tensor<B, D>),
}

/// Moves `value` into type `U` when it is one.
fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    if TypeId::of::<T>() != TypeId::of::<U>() {
        return Err(value);
    }
    let boxed: Box<dyn Any> = Box::new(value);
    match boxed.downcast::<U>() {
        Ok(value) => Ok(*value),
        Err(_) => unreachable!("TypeId equality implies the downcast succeeds"),
    }
}

/// Whether pet's fused kernels run at all: not when `PET_CPU_LEVEL` is `none` (pet's kernels
/// off, to run or compare Burn's path on any CPU).
pub fn kernels_on() -> bool {
    pet_gemm::Cap::selected() != pet_gemm::Cap::None
}

/// Sorts `tensor` by backend and element type; every tensor is composed when the kernels are
/// off ([`kernels_on`]).
pub fn route<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Route<B, D> {
    if tensor.dtype() != DType::F32 || !kernels_on() {
        return Route::Composed(tensor);
    }
    let tensor = match cast::<_, Tensor<Flex, D>>(tensor) {
        Ok(flex) => return Route::Flex(flex),
        Err(tensor) => tensor,
    };
    match cast::<_, Tensor<FlexAutodiff, D>>(tensor) {
        Ok(autodiff) => Route::Autodiff(autodiff),
        Err(tensor) => Route::Composed(tensor),
    }
}

/// Moves a tensor from one name of a backend type to another: back into the caller's `B` after
/// [`route`] matched it as `Flex` or `Autodiff<Flex>`, or a second tensor of that `B` (a layer's
/// parameters, a mask) into the backend its routed input landed in.
///
/// # Panics
/// When `B` and `C` are different types, which a [`Route`] of a `B` tensor rules out.
pub fn recast<B: Backend, C: Backend, const D: usize>(tensor: Tensor<B, D>) -> Tensor<C, D> {
    match cast::<_, Tensor<C, D>>(tensor) {
        Ok(tensor) => tensor,
        Err(_) => unreachable!("`B` and `C` name the same backend after a `route`"),
    }
}

/// The contiguous `f32` burn-flex tensor behind `tensor`.
pub fn flex<const D: usize>(tensor: Tensor<Flex, D>) -> FlexTensor {
    contiguous(tensor.into_primitive().tensor())
}

/// [`flex`] of `tensor` cast to `f32` first where it is another float type (a mask in `f16`).
pub fn flex_f32<const D: usize>(tensor: Tensor<Flex, D>) -> FlexTensor {
    flex(if tensor.dtype() == DType::F32 { tensor } else { tensor.cast(DType::F32) })
}

/// Wraps a burn-flex tensor.
pub fn from_flex<const D: usize>(tensor: FlexTensor) -> Tensor<Flex, D> {
    Tensor::from_primitive(TensorPrimitive::Float(tensor))
}

/// `tensor` itself when contiguous from offset 0, else a contiguous copy.
pub fn contiguous(tensor: FlexTensor) -> FlexTensor {
    if tensor.layout().contiguous_offsets().is_some_and(|(start, _)| start == 0) {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// The values of a tensor made [`contiguous`].
///
/// # Panics
/// When the tensor is not `f32` or not contiguous.
pub fn values(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// A new contiguous `f32` tensor of `shape` holding `values`.
pub fn tensor_of(values: Vec<f32>, shape: burn::tensor::Shape) -> FlexTensor {
    FlexTensor::from_data(burn::tensor::TensorData::new(values, shape))
}
