//! The conformance suite that every delta method runs (design section 5.2), as macros so that
//! each backbone crate runs it on its own `tiny()` preset:
//! [`delta_conformance!`](crate::delta_conformance) for one case,
//! [`backbone_conformance!`](crate::backbone_conformance) for the standard cases. Each case
//! checks:
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
use crate::blocks::EncoderInput;
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
    stack: crate::params::PathStack,
    grads: &'a B::Gradients,
    with_grad: BTreeMap<String, TensorData>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradPaths<'_, B> {
    fn enter_module(&mut self, name: &str, container: &str) {
        self.stack.enter(name, container);
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = param.val().grad(self.grads) {
            self.with_grad.insert(self.stack.path(), grad.into_data().convert::<f32>());
        }
    }
}

/// The gradients in `grads` of the parameters of `module`, by path.
pub fn grads_by_path<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &B::Gradients,
) -> BTreeMap<String, TensorData> {
    let mut visitor =
        GradPaths::<B> { stack: Default::default(), grads, with_grad: BTreeMap::new() };
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
/// - `backbone`: `|device| -> backbone => BackboneType` on
///   [`TestBackend`](crate::testing::TestBackend);
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

/// The input of the conformance cases: two sequences of five tokens that start with `first_id`
/// (the backbone's `[CLS]`), the second ending in one padding position.
pub fn conformance_input<B: Backend>(first_id: i64, device: &B::Device) -> EncoderInput<B> {
    EncoderInput::new(
        Tensor::from_data([[first_id, 7, 11, 5, 9], [first_id, 4, 8, 3, 0]], device),
        Tensor::from_data([[1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 0.0]], device),
    )
}

/// The number of parameters of `module` whose path `select` accepts.
pub fn count_params<B: Backend, M: Module<B>>(module: &M, select: impl Fn(&str) -> bool) -> usize {
    crate::params::param_entries::<B, M>(module)
        .iter()
        .filter(|e| select(&e.path))
        .map(|e| e.numel())
        .sum()
}

/// Whether `path` is a bias (`.bias`, or a layer norm's `.beta`): what BitFit trains.
pub fn is_bias(path: &str) -> bool {
    path.ends_with(".bias") || path.ends_with(".beta")
}

/// Generates the standard conformance cases of the delta methods on one backbone, a module each
/// (through [`delta_conformance!`](crate::delta_conformance)), so that a new backbone gets the
/// whole suite in one invocation:
///
/// - `soft_prompt`: prompt tuning, 4 virtual tokens;
/// - `p_tuning_v2_reparameterized`: deep prefix of 3 through an MLP of width 8;
/// - `lora`: rank 4 on the query and value projections and every `output.dense`, merged and
///   unmerged;
/// - `houlsby_adapter`: bottleneck 4 after attention and after the feed-forward block;
/// - `bitfit`: biases only;
/// - `partial_last_layer`: the last layer only;
/// - `prefix_with_lora_combination`: a prefix of 2 with rank-2 LoRA on query and value;
/// - `prompt_with_adapter_and_bitfit`: a prompt of 2, Pfeiffer adapters of 4 and the biases.
///
/// The trainable counts are the methods' formulas over the backbone's
/// [`shape`](crate::Backbone::shape), so the backbone must have the BERT-style linear sites and
/// sub-layers of [`LinearKind`](crate::LinearKind) in every layer.
///
/// - `backbone`: `|device| -> backbone => BackboneType` on
///   [`TestBackend`](crate::testing::TestBackend);
/// - `input`: `|device| -> input` of that backbone, e.g. [`conformance_input`];
/// - `lora_targets`: the `target_modules` names of its query and value projections
///   (`["query", "value"]` in BERT);
/// - `intermediate_size`: its feed-forward size, for LoRA's formula.
#[macro_export]
macro_rules! backbone_conformance {
    (
        backbone: $backbone:expr => $backbone_type:ty,
        input: $input:expr,
        lora_targets: [$query:literal, $value:literal],
        intermediate_size: $intermediate:expr $(,)?
    ) => {
        $crate::delta_conformance!(
            soft_prompt,
            backbone: $backbone => $backbone_type,
            input: $input,
            delta: |b: &$backbone_type, d: &burn::tensor::Device<$crate::testing::TestBackend>| {
                $crate::delta::prompt::PromptTuningConfig::new(4, b.shape().hidden_size)
                    .init(b.word_embeddings().as_ref(), d)
                    .expect("prompt")
            } => $crate::delta::prompt::SoftPrompt<$crate::testing::TestBackend>,
            trainability: $crate::Trainability::Frozen,
            params: |b: &$backbone_type| {
                $crate::delta::prompt::PromptTuningConfig::new(4, b.shape().hidden_size)
                    .num_params()
            },
            identity_at_init: false,
            merge: None,
        );

        $crate::delta_conformance!(
            p_tuning_v2_reparameterized,
            backbone: $backbone => $backbone_type,
            input: $input,
            delta: |b: &$backbone_type, d: &burn::tensor::Device<$crate::testing::TestBackend>| {
                $crate::delta::prefix::PrefixTuningConfig::for_backbone(b.shape(), 3)
                    .with_prefix_projection(true)
                    .with_encoder_hidden_size(8)
                    .init(d)
                    .expect("prefix")
            } => $crate::delta::prefix::PrefixTuning<$crate::testing::TestBackend>,
            trainability: $crate::Trainability::Frozen,
            params: |b: &$backbone_type| {
                let config = $crate::delta::prefix::PrefixTuningConfig::for_backbone(b.shape(), 3)
                    .with_prefix_projection(true)
                    .with_encoder_hidden_size(8);
                // n*d + d*h + h + h*(L*2*d) + L*2*d with n=3, h=8
                let (l, d) = (b.shape().encoder_layers, b.shape().hidden_size);
                let formula = 3 * d + d * 8 + 8 + 8 * (l * 2 * d) + l * 2 * d;
                assert_eq!(config.num_params(), formula);
                formula
            },
            identity_at_init: false,
            merge: None,
        );

        $crate::delta_conformance!(
            lora,
            backbone: $backbone => $backbone_type,
            input: $input,
            delta: |b: &$backbone_type, d: &burn::tensor::Device<$crate::testing::TestBackend>| {
                $crate::delta::lora::LoraConfig::new(4)
                    .with_target_modules(vec![$query.into(), $value.into(), "output.dense".into()])
                    .init(b, d)
                    .expect("lora")
            } => $crate::delta::lora::Lora<$crate::testing::TestBackend>,
            trainability: $crate::Trainability::Frozen,
            params: |b: &$backbone_type| {
                // Per layer: query and value (h -> h), attention.output.dense (h -> h) and
                // output.dense (intermediate -> h): r * (in + out) each.
                let (l, h) = (b.shape().encoder_layers, b.shape().hidden_size);
                let formula = l * 4 * ((h + h) + (h + h) + (h + h) + ($intermediate + h));
                let config = $crate::delta::lora::LoraConfig::new(4)
                    .with_target_modules(vec![$query.into(), $value.into(), "output.dense".into()]);
                assert_eq!(config.num_params(&b.linear_sites()).expect("sites"), formula);
                formula
            },
            identity_at_init: true,
            merge: Some(
                |lora: &$crate::delta::lora::Lora<$crate::testing::TestBackend>,
                 b: $backbone_type| lora.merge(b)
            ),
        );

        $crate::delta_conformance!(
            houlsby_adapter,
            backbone: $backbone => $backbone_type,
            input: $input,
            delta: |b: &$backbone_type, d: &burn::tensor::Device<$crate::testing::TestBackend>| {
                $crate::delta::adapter::AdapterConfig::houlsby(4)
                    .init(b.shape(), d)
                    .expect("adapter")
            } => $crate::delta::adapter::Adapters<$crate::testing::TestBackend>,
            trainability: $crate::Trainability::Frozen,
            params: |b: &$backbone_type| {
                // Two adapters a layer, each down (h -> 4) and up (4 -> h) with biases.
                let (l, h) = (b.shape().encoder_layers, b.shape().hidden_size);
                l * 2 * (2 * h * 4 + 4 + h)
            },
            identity_at_init: true,
            merge: None,
        );

        $crate::delta_conformance!(
            bitfit,
            backbone: $backbone => $backbone_type,
            input: $input,
            delta: |_: &$backbone_type, _: &burn::tensor::Device<$crate::testing::TestBackend>| {
                $crate::NoDelta
            } => $crate::NoDelta,
            trainability: $crate::Trainability::BiasOnly,
            params: |b: &$backbone_type| {
                $crate::testing::conformance::count_params::<$crate::testing::TestBackend, _>(
                    b,
                    $crate::testing::conformance::is_bias,
                )
            },
            identity_at_init: true,
            merge: None,
        );

        $crate::delta_conformance!(
            partial_last_layer,
            backbone: $backbone => $backbone_type,
            input: $input,
            delta: |_: &$backbone_type, _: &burn::tensor::Device<$crate::testing::TestBackend>| {
                $crate::NoDelta
            } => $crate::NoDelta,
            trainability: $crate::Trainability::LastLayers(1),
            params: |b: &$backbone_type| {
                let last = b.layer_path(b.shape().encoder_layers - 1);
                $crate::testing::conformance::count_params::<$crate::testing::TestBackend, _>(
                    b,
                    |p| p.starts_with(&last),
                )
            },
            identity_at_init: true,
            merge: None,
        );

        $crate::delta_conformance!(
            prefix_with_lora_combination,
            backbone: $backbone => $backbone_type,
            input: $input,
            delta: |b: &$backbone_type, d: &burn::tensor::Device<$crate::testing::TestBackend>| (
                $crate::delta::prefix::PrefixTuningConfig::for_backbone(b.shape(), 2)
                    .init(d)
                    .expect("prefix"),
                $crate::delta::lora::LoraConfig::new(2)
                    .with_target_modules(vec![$query.into(), $value.into()])
                    .init(b, d)
                    .expect("lora"),
            ) => (
                $crate::delta::prefix::PrefixTuning<$crate::testing::TestBackend>,
                $crate::delta::lora::Lora<$crate::testing::TestBackend>,
            ),
            trainability: $crate::Trainability::Frozen,
            params: |b: &$backbone_type| {
                $crate::delta::prefix::PrefixTuningConfig::for_backbone(b.shape(), 2).num_params()
                    + $crate::delta::lora::LoraConfig::new(2)
                        .with_target_modules(vec![$query.into(), $value.into()])
                        .num_params(&b.linear_sites())
                        .expect("sites")
            },
            identity_at_init: false,
            merge: None,
        );

        $crate::delta_conformance!(
            prompt_with_adapter_and_bitfit,
            backbone: $backbone => $backbone_type,
            input: $input,
            delta: |b: &$backbone_type, d: &burn::tensor::Device<$crate::testing::TestBackend>| (
                $crate::delta::prompt::PromptTuningConfig::new(2, b.shape().hidden_size)
                    .init(b.word_embeddings().as_ref(), d)
                    .expect("prompt"),
                $crate::delta::adapter::AdapterConfig::pfeiffer(4)
                    .init(b.shape(), d)
                    .expect("adapter"),
            ) => (
                $crate::delta::prompt::SoftPrompt<$crate::testing::TestBackend>,
                $crate::delta::adapter::Adapters<$crate::testing::TestBackend>,
            ),
            trainability: $crate::Trainability::BiasOnly,
            params: |b: &$backbone_type| {
                2 * b.shape().hidden_size
                    + $crate::delta::adapter::AdapterConfig::pfeiffer(4)
                        .num_params(b.shape())
                        .expect("count")
                    + $crate::testing::conformance::count_params::<$crate::testing::TestBackend, _>(
                        b,
                        $crate::testing::conformance::is_bias,
                    )
            },
            identity_at_init: false,
            merge: None,
        );
    };
}
