//! The conformance suite that every delta method runs (design section 5.2), as a macro so that
//! each backbone crate runs it on its own `tiny()` preset:
//!
//! - identity at init, where the method promises it;
//! - after one optimizer step only trainable parameters (delta, and the backbone parameters the
//!   trainability policy opens) have changed;
//! - frozen parameters get no gradient, trainable ones do;
//! - the trainable count equals the method's formula;
//! - a delta checkpoint round trip reproduces the outputs;
//! - merged == unmerged, where the method merges;
//! - the delta composes with [`NoDelta`](crate::NoDelta) on either side.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData, backend::AutodiffBackend, backend::Backend};

use crate::backbone::{Backbone, EncoderOutput};
use crate::delta::Delta;

/// A backbone and a delta: the smallest tuned model, with parameter paths `backbone.*` and
/// `delta.*`.
#[derive(Module, Debug)]
pub struct Tuned<B: Backend, K: Module<B>, L: Module<B>> {
    /// The backbone.
    pub backbone: K,
    /// The delta.
    pub delta: L,
    /// The backend.
    pub backend: core::marker::PhantomData<B>,
}

impl<B: Backend, K: Backbone<B, Output = EncoderOutput<B>>, L: Delta<B>> Tuned<B, K, L> {
    /// Runs the backbone with the delta.
    pub fn forward(&self, input: K::Input) -> EncoderOutput<B> {
        self.backbone.forward_with(input, &self.delta)
    }
}

/// A scalar that depends on every hidden unit: `mean(hidden * w)` with `w` rising over the hidden
/// axis (a plain mean of squares would be flat under a final layer norm).
pub fn probe_loss<B: Backend>(hidden: Tensor<B, 3>) -> Tensor<B, 1> {
    let [_, _, h] = hidden.dims();
    let w = Tensor::<B, 1, burn::tensor::Int>::arange(0..h as i64, &hidden.device()).float()
        / h as f64
        - 0.5;
    (hidden * w.reshape([1, 1, h])).mean()
}

struct GradPaths<'a, B: AutodiffBackend> {
    stack: Vec<String>,
    grads: &'a B::Gradients,
    with_grad: BTreeMap<String, TensorData>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradPaths<'_, B> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = param.val().grad(self.grads) {
            self.with_grad.insert(self.stack.join("."), grad.into_data().convert::<f32>());
        }
    }
}

/// The gradients in `grads` of the parameters of `module`, by path.
pub fn grads_by_path<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &B::Gradients,
) -> BTreeMap<String, TensorData> {
    let mut visitor = GradPaths::<B> { stack: Vec::new(), grads, with_grad: BTreeMap::new() };
    module.visit(&mut visitor);
    visitor.with_grad
}

/// Paths of the parameters of `module` that have a gradient in `grads`.
pub fn paths_with_grad<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &B::Gradients,
) -> BTreeSet<String> {
    grads_by_path(module, grads).into_keys().collect()
}

/// Largest absolute difference between two tensors of one shape.
pub fn max_abs_diff<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f64 {
    assert_eq!(a.dims(), b.dims(), "expected equal shapes");
    use burn::tensor::ElementConversion;
    (a - b).abs().max().into_scalar().elem::<f64>()
}

/// Asserts that `ours` is within `tolerance` of `theirs`, relative to the reference's largest
/// magnitude (at least 1): the comparison of every parity test.
///
/// # Panics
/// When the largest absolute difference exceeds `tolerance * max(1, max |theirs|)`.
pub fn assert_close<B: Backend, const D: usize>(
    what: &str,
    ours: Tensor<B, D>,
    theirs: Tensor<B, D>,
    tolerance: f64,
) {
    use burn::tensor::ElementConversion;
    let scale = theirs.clone().abs().max().into_scalar().elem::<f64>();
    let diff = max_abs_diff(ours, theirs);
    assert!(
        diff <= tolerance * scale.max(1.0),
        "{what}: max abs diff {diff} (reference scale {scale}) over {tolerance}"
    );
}

/// Generates the conformance tests of one delta method in a module named `$name`.
///
/// - `backbone`: `|device| -> backbone => BackboneType` on [`TestBackend`](crate::testing::TestBackend);
/// - `input`: `|device| -> input` of that backbone;
/// - `delta`: `|&backbone, device| -> delta => DeltaType`;
/// - `trainability`: the [`Trainability`](crate::Trainability) policy of the method;
/// - `params`: `|&backbone| -> usize`, the trainable count by the method's formula;
/// - `identity_at_init`: whether the fresh delta leaves the outputs unchanged;
/// - `merge`: `Some(|&delta, backbone| -> backbone)` (a closure without captures) for methods that fold into the weights
///   (the result runs with [`NoDelta`](crate::NoDelta)), or `None`.
#[macro_export]
macro_rules! delta_conformance {
    (
        $name:ident,
        backbone: $backbone:expr => $backbone_type:ty,
        input: $input:expr,
        delta: $delta:expr => $delta_type:ty,
        trainability: $policy:expr,
        params: $params:expr,
        identity_at_init: $identity:expr,
        merge: $merge:expr $(,)?
    ) => {
        #[allow(clippy::redundant_closure_call, unused_imports)]
        mod $name {
            use super::*;
            use burn::module::{AutodiffModule, Module};
            use burn::optim::{GradientsParams, Optimizer};
            use $crate::testing::conformance::{Tuned, max_abs_diff, paths_with_grad, probe_loss};
            use $crate::testing::TestBackend as B;
            use $crate::{Backbone, NoDelta};

            const EXACT: f64 = 1e-5;

            fn device() -> burn::tensor::Device<B> {
                Default::default()
            }

            type Model = Tuned<B, $backbone_type, $delta_type>;

            fn model() -> Model {
                let device = device();
                <B as burn::tensor::backend::Backend>::seed(&device, 7);
                let backbone: $backbone_type = ($policy).apply(($backbone)(&device));
                let delta: $delta_type = ($delta)(&backbone, &device);
                Tuned { backbone, delta, backend: core::marker::PhantomData }
            }

            fn hidden(model: &Model) -> burn::tensor::Tensor<B, 3> {
                model.forward(($input)(&device())).hidden
            }

            #[test]
            fn identity_at_init_where_promised() {
                let _serial = $crate::testing::serial();
                let model = model();
                let tuned = hidden(&model);
                let plain = model.backbone.forward_with(($input)(&device()), &NoDelta).hidden;
                let identical = tuned.dims() == plain.dims() && max_abs_diff(tuned, plain) < EXACT;
                assert_eq!(identical, $identity, "identity at init: expected {}", $identity);
            }

            #[test]
            fn frozen_parameters_get_no_gradient() {
                let _serial = $crate::testing::serial();
                let model = model();
                let grads = probe_loss(hidden(&model)).backward();
                let with_grad = paths_with_grad(&model, &grads);
                for entry in $crate::params::param_entries::<B, _>(&model) {
                    if !entry.trainable {
                        assert!(!with_grad.contains(&entry.path), "frozen `{}` has a gradient", entry.path);
                    }
                }
                assert!(!with_grad.is_empty(), "no parameter got a gradient");
            }

            #[test]
            fn one_step_changes_only_trainable_parameters() {
                let _serial = $crate::testing::serial();
                let model = model();
                let entries = $crate::params::param_entries::<B, _>(&model);
                let before = $crate::params::read_params::<B, _>(&model, &|_| true);
                let grads = GradientsParams::from_grads(probe_loss(hidden(&model)).backward(), &model);
                let mut optimizer = burn::optim::AdamConfig::new().init::<B, _>();
                let model = optimizer.step(1e-2, model, grads);
                let after = $crate::params::read_params::<B, _>(&model, &|_| true);
                let mut changed = 0;
                for entry in entries {
                    let moved = before[&entry.path] != after[&entry.path];
                    assert!(entry.trainable || !moved, "frozen `{}` changed", entry.path);
                    changed += usize::from(moved);
                }
                assert!(changed > 0, "no parameter changed");
            }

            #[test]
            fn trainable_count_matches_the_formula() {
                let _serial = $crate::testing::serial();
                let model = model();
                let report = $crate::ParamReport::of::<B, _>(&model, 1);
                assert_eq!(report.overall.trainable, ($params)(&model.backbone));
            }

            #[test]
            fn checkpoint_round_trip_reproduces_outputs() {
                let _serial = $crate::testing::serial();
                let original = model();
                let grads = GradientsParams::from_grads(probe_loss(hidden(&original)).backward(), &original);
                let mut optimizer = burn::optim::AdamConfig::new().init::<B, _>();
                let model = optimizer.step(1e-2, original.clone(), grads);
                let identity = model.backbone.identity();
                let checkpoint = $crate::checkpoint::DeltaCheckpoint::capture::<B, _>(
                    &model, &|e| e.trainable, serde_json::json!({"test": stringify!($name)}), identity.clone());
                let dir = std::env::temp_dir().join(format!("pet-conf-{}-{}", stringify!($name), std::process::id()));
                std::fs::create_dir_all(&dir).expect("temp dir");
                let path = dir.join("delta.safetensors");
                checkpoint.save(&path).expect("save");
                let loaded = $crate::checkpoint::DeltaCheckpoint::load(&path).expect("load");
                // The backbone as it was before the step, with a newly drawn delta.
                let fresh = Tuned {
                    delta: ($delta)(&original.backbone, &device()),
                    ..original
                };
                let restored = loaded.apply::<B, _>(fresh, &identity, &["delta"]).expect("apply");
                let diff = max_abs_diff(hidden(&model), hidden(&restored));
                assert!(diff < EXACT, "outputs differ by {diff} after a round trip");
            }

            #[test]
            fn merged_equals_unmerged_where_the_method_merges() {
                let _serial = $crate::testing::serial();
                let merge: Option<fn(&$delta_type, $backbone_type) -> $backbone_type> = $merge;
                let Some(merge) = merge else { return };
                let model = model();
                let grads = GradientsParams::from_grads(probe_loss(hidden(&model)).backward(), &model);
                let mut optimizer = burn::optim::AdamConfig::new().init::<B, _>();
                let model = optimizer.step(1e-2, model, grads);
                let merged = merge(&model.delta, model.backbone.clone());
                let diff = max_abs_diff(hidden(&model), merged.forward_with(($input)(&device()), &NoDelta).hidden);
                assert!(diff < 1e-4, "merged and unmerged differ by {diff}");
            }

            #[test]
            fn composes_with_no_delta_on_either_side() {
                let _serial = $crate::testing::serial();
                let model = model();
                let alone = hidden(&model);
                let left = model.backbone.forward_with(($input)(&device()), &(NoDelta, model.delta.clone())).hidden;
                let right = model.backbone.forward_with(($input)(&device()), &(model.delta.clone(), NoDelta)).hidden;
                assert_eq!(max_abs_diff(alone.clone(), left), 0.0);
                assert_eq!(max_abs_diff(alone, right), 0.0);
            }
        }
    };
}
