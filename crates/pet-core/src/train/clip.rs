//! Global-norm gradient clipping, as PyTorch's `clip_grad_norm_`: all gradients of a step are
//! scaled by `max_norm / total_norm` when their joint L2 norm exceeds `max_norm`.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{ElementConversion, Tensor, backend::AutodiffBackend};

struct SquaredNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    total: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let squares = grad.powi_scalar(2).sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + squares,
                None => squares,
            });
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register::<B::InnerBackend, D>(param.id, grad * self.factor);
        }
    }
}

/// Scales the gradients of `module`'s parameters so that their joint L2 norm is at most
/// `max_norm`. Returns the norm before clipping.
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    let mut norm = SquaredNorm::<B> { grads, total: None };
    module.visit(&mut norm);
    let total = norm.total.map_or(0.0, |t| t.into_scalar().elem::<f64>()).sqrt();
    if total > max_norm {
        module.visit(&mut Scale { grads, factor: max_norm / (total + 1e-6) });
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestBackend as AB;
    use burn::module::Module;

    #[derive(Module, Debug)]
    struct Two<B: burn::tensor::backend::Backend> {
        a: Param<Tensor<B, 1>>,
        b: Param<Tensor<B, 1>>,
    }

    fn grads_of(model: &Two<AB>) -> GradientsParams {
        // loss = 3 a0 + 4 b0: gradients (3) and (4), joint norm 5.
        let loss = model.a.val() * 3.0 + model.b.val() * 4.0;
        GradientsParams::from_grads(loss.sum().backward(), model)
    }

    fn model() -> Two<AB> {
        let device = Default::default();
        Two {
            a: Param::from_tensor(Tensor::from_data([1.0], &device)),
            b: Param::from_tensor(Tensor::from_data([1.0], &device)),
        }
    }

    #[test]
    fn gradients_are_scaled_to_the_global_norm() {
        let model = model();
        let mut grads = grads_of(&model);
        let norm = clip_global_norm(&model, &mut grads, 1.0);
        assert!((norm - 5.0).abs() < 1e-6);
        let a = grads
            .get::<<AB as AutodiffBackend>::InnerBackend, 1>(model.a.id)
            .expect("a")
            .into_scalar();
        let b = grads
            .get::<<AB as AutodiffBackend>::InnerBackend, 1>(model.b.id)
            .expect("b")
            .into_scalar();
        assert!((a - 0.6).abs() < 1e-5 && (b - 0.8).abs() < 1e-5, "{a} {b}");
    }

    #[test]
    fn gradients_under_the_bound_are_left_alone() {
        let model = model();
        let mut grads = grads_of(&model);
        clip_global_norm(&model, &mut grads, 10.0);
        let a = grads
            .get::<<AB as AutodiffBackend>::InnerBackend, 1>(model.a.id)
            .expect("a")
            .into_scalar();
        assert_eq!(a, 3.0);
    }
}
