//! Exact GELU, `x * Phi(x) = x/2 (1 + erf(x / sqrt 2))` (Hugging Face's `gelu`).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn_flex::FlexTensor;

use crate::dispatch::{Route, from_flex, recast, route, tensor_of, values};
use crate::fused::{FusedOp, infer, primitive, record, wrap};
use crate::math::{erf, erf_and_gaussian};
use crate::parallel::{map, zip_map};

/// Exact GELU of every element; fused on burn-flex, `burn::tensor::activation::gelu` elsewhere.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    match route(x) {
        Route::Flex(x) => recast(from_flex::<D>(infer(&Gelu, [x.into_primitive().tensor()]))),
        Route::Autodiff(x) => recast(wrap::<D>(record(Gelu, [primitive(x)]))),
        Route::Composed(x) => burn::tensor::activation::gelu(x),
    }
}

/// The GELU kernel pair; the backward keeps the input.
#[derive(Debug)]
struct Gelu;

impl FusedOp<1> for Gelu {
    type Saved = FlexTensor;

    fn forward(&self, [x]: [FlexTensor; 1]) -> (FlexTensor, FlexTensor) {
        let out = map(
            values(&x),
            #[inline(always)]
            |x| 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
        );
        (tensor_of(out, x.layout().shape().clone()), x)
    }

    fn backward(&self, x: FlexTensor, grad: FlexTensor, _: [bool; 1]) -> [Option<FlexTensor>; 1] {
        // d/dx = Phi(x) + x phi(x)
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        let dx = zip_map(
            values(&x),
            values(&grad),
            #[inline(always)]
            |x, g| {
                // erf(x / sqrt 2) and e^{-x^2 / 2} from one exponential.
                let (erf, gaussian) = erf_and_gaussian(x * std::f32::consts::FRAC_1_SQRT_2);
                g * (0.5 * (1.0 + erf) + x * INV_SQRT_2PI * gaussian)
            },
        );
        [Some(tensor_of(dx, x.layout().shape().clone()))]
    }
}
