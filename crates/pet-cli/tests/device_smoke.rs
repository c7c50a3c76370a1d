//! One training step of the tiny encoder with a prefix on every backend compiled in, through the
//! same device dispatch as the binary. CI builds this with `--features wgpu` and runs it on
//! Mesa's lavapipe.

use anyhow::Result;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Int, Tensor};
use pet_cli::device::{BackendJob, DeviceSpec, run_on};
use pet_core::delta::prefix::PrefixTuningConfig;
use pet_core::testing::conformance::{Tuned, probe_loss};
use pet_core::testing::{TinyEncoderConfig, TinyInput};
use pet_core::{Backbone, Trainability};

struct OneStep;

impl BackendJob for OneStep {
    type Output = (f64, f64);

    fn run<B: AutodiffBackend>(self, device: B::Device, _name: &str) -> Result<(f64, f64)> {
        let backbone = Trainability::Frozen.apply(TinyEncoderConfig::tiny().init::<B>(&device));
        let delta = PrefixTuningConfig::for_backbone(backbone.shape(), 2).init::<B>(&device)?;
        let model = Tuned { backbone, delta, backend: Default::default() };
        let input = || {
            TinyInput::new(
                Tensor::<B, 2, Int>::from_data([[2, 7, 11, 5], [2, 4, 8, 0]], &device),
                Tensor::from_data([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]], &device),
            )
        };
        let loss =
            |m: &Tuned<B, _, _>| probe_loss(m.forward(input()).hidden).into_scalar().elem::<f64>();
        let before = loss(&model);
        let grads = GradientsParams::from_grads(
            probe_loss(model.forward(input()).hidden).backward(),
            &model,
        );
        anyhow::ensure!(
            grads.len() == 1,
            "only the prefix table gets a gradient, got {}",
            grads.len()
        );
        let model = AdamWConfig::new().init::<B, _>().step(0.1, model, grads);
        Ok((before, loss(&model)))
    }
}

pub(crate) fn step_lowers_loss(spec: DeviceSpec) {
    let (before, after) = run_on(spec, OneStep).expect("one step runs");
    assert!(before.is_finite() && after.is_finite(), "{spec}: loss {before} -> {after}");
    assert!(after < before, "{spec}: one step should lower the probe loss: {before} -> {after}");
}

#[test]
fn one_training_step_on_the_cpu() {
    step_lowers_loss(DeviceSpec::Cpu);
}

#[cfg(feature = "wgpu")]
#[test]
fn one_training_step_on_wgpu() {
    step_lowers_loss(DeviceSpec::Wgpu);
}
