//! The training loop.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::{ElementConversion, Tensor, backend::AutodiffBackend};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{PetError, Result};
use crate::rng::SplitMix64;
use crate::train::{LinearWarmupDecay, MetricsLog, clip_global_norm};

/// A model that can be trained: it turns a batch into a scalar loss.
pub trait TrainTask<B: AutodiffBackend>: AutodiffModule<B> {
    /// One training batch.
    type Batch;

    /// Mean loss over the batch.
    ///
    /// # Shapes
    /// - output: `[1]`
    fn loss(&self, batch: &Self::Batch) -> Tensor<B, 1>;

    /// Number of samples in `batch`, for throughput.
    fn batch_size(batch: &Self::Batch) -> usize;
}

/// Optimization settings; defaults follow the P-Tuning v2 recipes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Decoupled weight decay of AdamW.
    pub weight_decay: f64,
    /// Share of all optimizer steps spent warming up.
    pub warmup_ratio: f64,
    /// Global gradient-norm bound; `None` disables clipping.
    pub max_grad_norm: Option<f64>,
    /// Batches whose gradients are summed before one optimizer step.
    pub gradient_accumulation_steps: usize,
    /// AdamW epsilon.
    pub adam_epsilon: f64,
    /// Seed of the backend (init, dropout) and of the batch order.
    pub seed: u64,
    /// Log a step record every this many optimizer steps.
    pub log_every: usize,
    /// Show a progress bar (only drawn on a terminal).
    pub progress: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            learning_rate: 1e-2,
            weight_decay: 0.0,
            warmup_ratio: 0.0,
            max_grad_norm: Some(1.0),
            gradient_accumulation_steps: 1,
            adam_epsilon: 1e-8,
            seed: 42,
            log_every: 10,
            progress: true,
        }
    }
}

impl TrainConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(PetError::config("epochs", "must be at least 1"));
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.learning_rate) {
            let reason =
                format!("must be a finite number greater than 0, got {}", self.learning_rate);
            return Err(PetError::config("learning_rate", reason));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            let reason =
                format!("must be a finite number of at least 0, got {}", self.weight_decay);
            return Err(PetError::config("weight_decay", reason));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            let reason = format!("must be in [0, 1), got {}", self.warmup_ratio);
            return Err(PetError::config("warmup_ratio", reason));
        }
        if self.gradient_accumulation_steps == 0 {
            return Err(PetError::config("gradient_accumulation_steps", "must be at least 1"));
        }
        if self.max_grad_norm.is_some_and(|n| !positive(n)) {
            return Err(PetError::config(
                "max_grad_norm",
                "must be a finite number greater than 0",
            ));
        }
        if !positive(self.adam_epsilon) {
            return Err(PetError::config("adam_epsilon", "must be a finite number greater than 0"));
        }
        if self.log_every == 0 {
            return Err(PetError::config("log_every", "must be at least 1"));
        }
        Ok(())
    }
}

/// What an evaluation returns: the score that selects the best epoch (higher is better) and
/// any metrics to log.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Evaluation {
    /// Selection score.
    pub score: f64,
    /// Named metrics.
    pub metrics: BTreeMap<String, f64>,
}

/// One epoch's summary.
#[derive(Clone, Debug, Serialize)]
pub struct EpochReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Evaluation after the epoch.
    pub evaluation: Evaluation,
    /// Training samples per second.
    pub samples_per_sec: f64,
}

/// The result of [`fit`].
#[derive(Debug)]
pub struct TrainOutcome<M> {
    /// The model after the best epoch (highest evaluation score; the earliest on ties).
    pub best: M,
    /// 1-based index of the best epoch.
    pub best_epoch: usize,
    /// Every epoch.
    pub history: Vec<EpochReport>,
}

/// Trains `model` for `config.epochs` epochs.
///
/// `epoch_batches(epoch, rng)` gives the batches of one epoch (shuffle them with `rng`, which is
/// seeded from `config.seed`); `evaluate` scores the model without autodiff after every epoch.
/// Only parameters with `require_grad` get gradients and AdamW state.
///
/// # Errors
/// [`PetError::InvalidConfig`] for bad settings or an epoch without batches; [`PetError::Io`]
/// when the metrics log cannot be written.
pub fn fit<B, M>(
    model: M,
    config: &TrainConfig,
    device: &B::Device,
    mut epoch_batches: impl FnMut(usize, &mut SplitMix64) -> Vec<M::Batch>,
    mut evaluate: impl FnMut(&M::InnerModule) -> Evaluation,
    log: &mut MetricsLog,
) -> Result<TrainOutcome<M>>
where
    B: AutodiffBackend,
    M: TrainTask<B>,
{
    config.validate()?;
    B::seed(device, config.seed);
    let mut rng = SplitMix64::new(config.seed);
    let mut optimizer = AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .with_epsilon(config.adam_epsilon as f32)
        .init::<B, M>();
    let mut model = model;
    let mut best: Option<(M, usize, f64)> = None;
    let mut history = Vec::new();
    let mut step = 0usize;
    let mut schedule: Option<LinearWarmupDecay> = None;
    for epoch in 1..=config.epochs {
        let batches = epoch_batches(epoch, &mut rng);
        if batches.is_empty() {
            return Err(PetError::config("train data", "gives no batch"));
        }
        let steps_per_epoch = batches.len().div_ceil(config.gradient_accumulation_steps);
        let schedule = *schedule.get_or_insert_with(|| {
            let total_steps = steps_per_epoch * config.epochs;
            LinearWarmupDecay {
                peak: config.learning_rate,
                warmup_steps: (config.warmup_ratio * total_steps as f64).round() as usize,
                total_steps,
            }
        });
        let bar = progress_bar(config.progress, batches.len() as u64, epoch, config.epochs);
        let started = Instant::now();
        let (mut samples, mut loss_sum, mut loss_count) = (0usize, 0.0f64, 0usize);
        let mut accumulator = GradientsAccumulator::<M>::new();
        let mut pending = 0usize;
        let last = batches.len() - 1;
        for (index, batch) in batches.iter().enumerate() {
            let loss = model.loss(batch);
            samples += M::batch_size(batch);
            // The loss is read for the log and the progress bar anyway: checking it costs no
            // extra device sync.
            let value = loss.clone().into_scalar().elem::<f64>();
            if !value.is_finite() {
                return Err(diverged(config, epoch, step + 1, "loss", value, schedule.at(step)));
            }
            loss_sum += value;
            loss_count += 1;
            let scaled = loss / config.gradient_accumulation_steps as f64;
            let grads = GradientsParams::from_grads(scaled.backward(), &model);
            accumulator.accumulate(&model, grads);
            pending += 1;
            if pending == config.gradient_accumulation_steps || index == last {
                let mut grads = accumulator.grads();
                let grad_norm =
                    config.max_grad_norm.map(|max| clip_global_norm(&model, &mut grads, max));
                let lr = schedule.at(step);
                if let Some(norm) = grad_norm.filter(|n| !n.is_finite()) {
                    return Err(diverged(config, epoch, step + 1, "gradient norm", norm, lr));
                }
                model = optimizer.step(lr, model, grads);
                step += 1;
                pending = 0;
                if step.is_multiple_of(config.log_every) {
                    log.record(&json!({
                        "event": "step", "epoch": epoch, "step": step, "loss": value, "lr": lr,
                        "grad_norm": grad_norm,
                        "samples_per_sec": samples as f64 / started.elapsed().as_secs_f64(),
                    }))?;
                }
            }
            bar.set_message(format!(
                "loss {:.4} | {:.1} samples/s",
                loss_sum / loss_count as f64,
                samples as f64 / started.elapsed().as_secs_f64().max(1e-9)
            ));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let samples_per_sec = samples as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let evaluation = evaluate(&model.valid());
        let improved = best.as_ref().is_none_or(|(_, _, score)| evaluation.score > *score);
        if improved {
            best = Some((model.clone(), epoch, evaluation.score));
        }
        let report = EpochReport {
            epoch,
            train_loss: loss_sum / loss_count as f64,
            evaluation,
            samples_per_sec,
        };
        log.record(&json!({"event": "epoch", "best": improved, "report": &report}))?;
        history.push(report);
    }
    let (best, best_epoch, _) =
        best.ok_or_else(|| PetError::config("epochs", "must be at least 1"))?;
    Ok(TrainOutcome { best, best_epoch, history })
}

/// The error of a loss or gradient norm that is NaN or infinite, with its likely cause.
fn diverged(
    config: &TrainConfig,
    epoch: usize,
    step: usize,
    quantity: &'static str,
    value: f64,
    lr: f64,
) -> PetError {
    let mut cause = format!(
        "the learning rate is likely too high (peak {:e}, {lr:.2e} at this step): lower it \
         (`--lr`, or `learning_rate` under [optim])",
        config.learning_rate
    );
    if config.max_grad_norm.is_none() {
        cause.push_str(", or bound the gradients with `max_grad_norm`");
    }
    PetError::Diverged { epoch, step, quantity, value, cause }
}

fn progress_bar(show: bool, len: u64, epoch: usize, epochs: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_their_field() {
        let cases = [
            (TrainConfig { epochs: 0, ..TrainConfig::default() }, "epochs"),
            (TrainConfig { learning_rate: 0.0, ..TrainConfig::default() }, "learning_rate"),
            (TrainConfig { warmup_ratio: 1.0, ..TrainConfig::default() }, "warmup_ratio"),
            (
                TrainConfig { gradient_accumulation_steps: 0, ..TrainConfig::default() },
                "gradient_accumulation_steps",
            ),
            (TrainConfig { max_grad_norm: Some(-1.0), ..TrainConfig::default() }, "max_grad_norm"),
            (TrainConfig { learning_rate: -1.0, ..TrainConfig::default() }, "learning_rate"),
            (TrainConfig { learning_rate: f64::NAN, ..TrainConfig::default() }, "learning_rate"),
            (
                TrainConfig { learning_rate: f64::INFINITY, ..TrainConfig::default() },
                "learning_rate",
            ),
            (TrainConfig { weight_decay: -0.1, ..TrainConfig::default() }, "weight_decay"),
            (TrainConfig { weight_decay: f64::NAN, ..TrainConfig::default() }, "weight_decay"),
            (TrainConfig { warmup_ratio: f64::NAN, ..TrainConfig::default() }, "warmup_ratio"),
            (TrainConfig { adam_epsilon: 0.0, ..TrainConfig::default() }, "adam_epsilon"),
            (TrainConfig { log_every: 0, ..TrainConfig::default() }, "log_every"),
        ];
        for (config, field) in cases {
            let err = config.validate().expect_err(field).to_string();
            assert!(err.contains(field), "{err}");
        }
        assert!(TrainConfig::default().validate().is_ok());
    }

    #[test]
    fn unknown_config_fields_are_refused() {
        let err = serde_json::from_str::<TrainConfig>(r#"{"epochs": 2, "learning_rat": 0.1}"#)
            .expect_err("typo");
        assert!(err.to_string().contains("learning_rat"), "{err}");
    }
}
