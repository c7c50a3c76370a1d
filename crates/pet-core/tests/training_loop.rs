//! The training loop's mechanics: gradient accumulation and the JSON-lines metrics log.

use burn::module::AutodiffModule;
use burn::nn::LinearConfig;
use pet_core::delta::lora::{Lora, LoraConfig};
use pet_core::params::{read_params, set_trainable};
use pet_core::testing::conformance::max_abs_diff;
use pet_core::testing::{TestBackend as B, TestInner, TinyEncoderConfig};
use pet_core::train::{Evaluation, MetricsLog, TrainConfig, fit};

use crate::learning::{Batch, Classifier, batches, dataset};

fn model() -> Classifier<B, Lora<B>> {
    let device = Default::default();
    let backbone = set_trainable(TinyEncoderConfig::tiny().init::<B>(&device), &|_| false);
    let delta = LoraConfig::new(2).init(&backbone, &device).expect("lora");
    Classifier { backbone, delta, head: LinearConfig::new(16, 2).init(&device) }
}

fn train(
    model: Classifier<B, Lora<B>>,
    data: &[Batch],
    accumulation: usize,
    log: &mut MetricsLog,
) -> Classifier<B, Lora<B>> {
    let config = TrainConfig {
        epochs: 2,
        learning_rate: 0.01,
        max_grad_norm: None,
        gradient_accumulation_steps: accumulation,
        log_every: 1,
        progress: false,
        ..TrainConfig::default()
    };
    let outcome = fit(
        model,
        &config,
        &Default::default(),
        |_, _| data.to_vec(),
        |m: &Classifier<TestInner, Lora<TestInner>>| Evaluation {
            score: -m.accuracy(data),
            ..Evaluation::default()
        },
        log,
    )
    .expect("training runs");
    outcome.best
}

#[test]
fn gradient_accumulation_of_two_halves_matches_one_full_batch() {
    let _serial = pet_core::testing::serial();
    let start = model();
    let rows = dataset(16, 5);
    let full = train(start.clone(), &batches(&rows, 16), 1, &mut MetricsLog::disabled());
    let halves = train(start.clone(), &batches(&rows, 8), 2, &mut MetricsLog::disabled());
    let last_only = train(start, &batches(&rows[8..], 8), 1, &mut MetricsLog::disabled());
    let params = |m: &Classifier<B, Lora<B>>| read_params::<B, _>(m, &|e| e.trainable);
    let (full, halves, last_only) = (params(&full), params(&halves), params(&last_only));
    let tensor = |d: &burn::tensor::TensorData| {
        burn::tensor::Tensor::<TestInner, 1>::from_data(
            d.clone().convert::<f32>().into_vec::<f32>().expect("floats").as_slice(),
            &Default::default(),
        )
    };
    let mut accumulated_equals_full = true;
    let mut last_only_differs = false;
    for (key, value) in &full {
        accumulated_equals_full &= max_abs_diff(tensor(value), tensor(&halves[key])) < 1e-5;
        last_only_differs |= max_abs_diff(tensor(value), tensor(&last_only[key])) > 1e-4;
    }
    assert!(accumulated_equals_full, "two accumulated halves must step like the full batch");
    assert!(last_only_differs, "the comparison must be able to fail");
}

#[test]
fn metrics_are_written_as_json_lines_per_step_and_epoch() {
    let _serial = pet_core::testing::serial();
    let path = std::env::temp_dir().join(format!("pet-metrics-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let data = batches(&dataset(24, 6), 8);
    let mut log = MetricsLog::to_file(&path).expect("log");
    let trained = train(model(), &data, 1, &mut log);
    drop(log);
    assert!(trained.valid().accuracy(&data) >= 0.0);
    let text = std::fs::read_to_string(&path).expect("log written");
    let records: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    let steps = records.iter().filter(|r| r["event"] == "step").count();
    let epochs: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["event"] == "epoch").collect();
    assert_eq!(steps, 2 * 3, "3 batches a epoch, 2 epochs, logged every step");
    assert_eq!(epochs.len(), 2);
    assert_eq!(epochs[0]["best"], true);
    assert!(epochs[1]["report"]["train_loss"].as_f64().is_some_and(f64::is_finite));
    assert!(
        records[0]["lr"].as_f64().is_some() && records[0]["samples_per_sec"].as_f64().is_some()
    );
}

#[test]
fn a_loss_that_is_not_finite_stops_training_naming_the_epoch_step_and_learning_rate() {
    let _serial = pet_core::testing::serial();
    let data = batches(&dataset(24, 6), 8);
    let path = std::env::temp_dir().join(format!("pet-diverged-{}.jsonl", std::process::id()));
    let mut log = MetricsLog::to_file(&path).expect("log");
    for max_grad_norm in [Some(1.0), None] {
        let config = TrainConfig {
            epochs: 3,
            learning_rate: 1e30,
            max_grad_norm,
            log_every: 1,
            progress: false,
            ..TrainConfig::default()
        };
        let result = fit(
            model(),
            &config,
            &Default::default(),
            |_, _| data.clone(),
            |_: &Classifier<TestInner, Lora<TestInner>>| Evaluation::default(),
            &mut log,
        );
        let err = result.expect_err("a rate of 1e30 diverges");
        let message = err.to_string();
        let pet_core::PetError::Diverged { epoch, step, value, .. } = err else {
            panic!("expected Diverged, got {message}")
        };
        assert!(!value.is_finite() && epoch >= 1 && step >= 2, "{message}");
        assert!(message.contains(&format!("epoch {epoch}, step {step}")), "{message}");
        assert!(message.contains("learning rate is likely too high"), "{message}");
        assert_eq!(message.contains("max_grad_norm"), max_grad_norm.is_none(), "{message}");
    }
    drop(log);
    let _ = std::fs::remove_file(&path);
}
