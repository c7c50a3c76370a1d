//! P-Tuning v2 on a Hugging Face folder without the `pet` command line: load the encoder, attach
//! a 16-position deep prefix with a classification head, train a few steps, save the delta (a
//! few KiB), restore it onto the pretrained folder and predict.
//!
//! ```text
//! cargo run -p pet-nlp --example ptuning_v2_classifier [MODEL_FOLDER]
//! ```
//!
//! `MODEL_FOLDER` holds `config.json`, `model.safetensors` and `tokenizer.json` of a BERT,
//! RoBERTa or DeBERTa-v2/v3 model; without it the example uses the tiny random BERT of the
//! parity fixtures, so the numbers say nothing about quality, only that every step runs.

use std::path::PathBuf;

use burn::backend::{Autodiff, Flex};
use pet_core::delta::set::DeltaSpec;
use pet_core::task::Task;
use pet_core::task::restore::restore_task;
use pet_core::task::train::{TrainPlan, train_task};
use pet_core::train::TrainConfig;
use pet_nlp::tasks::classification::{Classification, ClassificationOptions};

type B = Autodiff<Flex>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let folder = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/parity/encoders/bert")
    });
    let work = std::env::temp_dir().join(format!("pet-nlp-example-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    // A toy sentiment set, as JSON lines with `text` and `label`.
    let rows = [
        ("a wonderful, warm film", "pos"),
        ("the best thing this year", "pos"),
        ("i loved every minute", "pos"),
        ("dull and far too long", "neg"),
        ("a waste of an evening", "neg"),
        ("i want those hours back", "neg"),
    ];
    let lines: String = rows
        .iter()
        .map(|(text, label)| format!("{}\n", serde_json::json!({"text": text, "label": label})))
        .collect();
    let (train, dev) = (work.join("train.jsonl"), work.join("dev.jsonl"));
    std::fs::write(&train, &lines)?;
    std::fs::write(&dev, &lines)?;

    let plan = TrainPlan {
        folder: folder.clone(),
        train,
        dev: dev.clone(),
        test: None,
        method: "ptuning-v2".into(),
        spec: DeltaSpec::preset("ptuning-v2")?,
        batch_size: 2,
        max_train_examples: None,
        max_eval_examples: None,
        output: work.join("run"),
        overwrite: true,
        extra_files: Vec::new(),
        optim: TrainConfig {
            epochs: 2,
            learning_rate: 1e-2,
            progress: false,
            ..Default::default()
        },
    };
    let device = Default::default();
    let options = ClassificationOptions { max_length: 32 };
    let summary = train_task::<B, Classification>(&plan, options, &device, |start| {
        println!("{}", start.report);
    })?;
    println!(
        "best epoch {}: dev {:?}; {} of {} parameters trained; delta checkpoint {} bytes",
        summary.best_epoch, summary.dev, summary.trainable, summary.total, summary.delta_bytes
    );

    // The checkpoint holds the delta and the head; the folder provides the frozen backbone.
    let delta = plan.output.join("delta.safetensors");
    let restored = restore_task::<B, Classification>(&folder, &delta, &device)?;
    // Predictions go to any `Predictions` receiver as each batch is run; a vector keeps them.
    let mut lines: Vec<serde_json::Value> = Vec::new();
    Task::<B>::predict(&restored.task, &restored.model, &dev, 8, &mut lines)?;
    for line in lines.iter().take(3) {
        println!("{line}");
    }
    std::fs::remove_dir_all(&work)?;
    Ok(())
}
