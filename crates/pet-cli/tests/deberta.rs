//! The command line on a DeBERTa-v3 folder: the tiny random checkpoint of
//! `pet-nlp/tests/parity/deberta/v3` with its SentencePiece (Unigram) `tokenizer.json`.
//! `pet train` tunes P-Tuning v2 for classification (ContextPooler head), tagging and extractive
//! QA (windows with a stride over SentencePiece offsets), `pet eval`
//! and `pet predict` restore the trained models from their checkpoints alone, `pet encode` runs
//! text lines through the trained delta, and a PEFT LoRA adapter folder through `pet encode`
//! reproduces PEFT's hidden states.

use std::path::{Path, PathBuf};

use pet_cli::device::{DeviceSpec, run_on};
use pet_cli::encode::EncodeJob;
use pet_cli::predict::{PredictJob, PredictOutcome};
use pet_cli::train::TrainJob;
use pet_core::precision::Precision;
use pet_core::safetensors_io::read_tensor_file;
use pet_core::testing::TempDir;

use crate::predict_encode::{encode_matches_peft, pretokenized_input};
use crate::train::{job_on, qa_round_trip, tagging_job, write_conll, write_data};

fn fixtures(case: &str) -> PathBuf {
    crate::fixtures::parity("deberta", case)
}

/// `pet eval` of `delta` on `input` gives `metric` as training reported it.
fn eval_matches(delta: &Path, input: &Path, metric: &str, trained: f64) {
    let job = PredictJob {
        overwrite: false,
        model: fixtures("v3").display().to_string(),
        delta: delta.to_path_buf(),
        input: input.to_path_buf(),
        output: None,
        precision: Precision::F32,
    };
    let PredictOutcome::Scored(metrics) = run_on(DeviceSpec::Cpu, job).expect("eval") else {
        panic!("eval scores")
    };
    assert!((metrics[metric] - trained).abs() < 1e-12, "{metrics:?} vs {metric} {trained}");
}

/// `pet predict` of `delta` on `input`, one JSON value per line.
fn predict(delta: &Path, input: &Path, dir: &Path) -> Vec<serde_json::Value> {
    let output = dir.join("predictions.jsonl");
    let job = PredictJob {
        overwrite: false,
        model: fixtures("v3").display().to_string(),
        delta: delta.to_path_buf(),
        input: input.to_path_buf(),
        output: Some(output.clone()),
        precision: Precision::F32,
    };
    assert!(matches!(run_on(DeviceSpec::Cpu, job).expect("predict"), PredictOutcome::Written(_)));
    std::fs::read_to_string(&output)
        .expect("predictions")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn ptuning_v2_classification_on_deberta_trains_predicts_and_encodes() {
    let _serial = pet_core::testing::serial();
    let dir = TempDir::new("deberta-cls");
    let d = dir.path();
    write_data(d);
    let job = job_on(&fixtures("v3"), d, "ptuning-v2");
    let output = job.output.clone();
    let summary = run_on(DeviceSpec::Cpu, TrainJob(job)).expect("training runs");
    assert!(summary.trainable > 0 && summary.trainable < summary.total);
    let delta = output.join("delta.safetensors");
    let text = pet_cli::inspect::describe(&delta).expect("inspect");
    assert!(text.contains("deberta-v2"), "the backbone identity: {text}");
    assert!(text.contains("head.dense.weight"), "the ContextPooler's dense layer: {text}");
    assert!(text.contains("delta.prefix"), "{text}");

    let test = summary.test.expect("test metrics");
    eval_matches(&delta, &d.join("dev.jsonl"), "accuracy", test["accuracy"]);
    let lines = predict(&delta, &d.join("dev.jsonl"), d);
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["logits"].as_array().map(Vec::len), Some(2));
    assert!(lines.iter().all(|l| l["label"] == "cat" || l["label"] == "dog"));

    let input = d.join("texts.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"the cat sat\"}\n{\"text\": \"a dog\", \"text_pair\": \"spam\"}\n",
    )
    .expect("input");
    let encoded = d.join("encoded.safetensors");
    let job = EncodeJob {
        overwrite: false,
        model: fixtures("v3").display().to_string(),
        input,
        output: encoded.clone(),
        delta: Some(delta),
        max_length: 16,
    };
    assert_eq!(run_on(DeviceSpec::Cpu, job).expect("encode"), 2);
    let file = read_tensor_file(&encoded).expect("output").tensors;
    // "the cat sat" is [CLS] + 10 pieces + [SEP]; DeBERTa has no pooler.
    let shape = file["last_hidden_state"].shape.to_vec();
    assert!(shape[0] == 2 && shape[1] >= 12 && shape[2] == 16, "{shape:?}");
    assert!(!file.contains_key("pooler_output"));
}

#[test]
fn ptuning_v2_tagging_on_deberta_trains_and_predicts_word_tags() {
    let _serial = pet_core::testing::serial();
    let dir = TempDir::new("deberta-tag");
    let d = dir.path();
    write_conll(d);
    let job = tagging_job(&fixtures("v3"), d, "ptuning-v2", 32, false);
    let output = job.output.clone();
    let summary = run_on(DeviceSpec::Cpu, TrainJob(job)).expect("tagging trains");
    let delta = output.join("delta.safetensors");
    let test = summary.test.expect("test metrics");
    eval_matches(&delta, &d.join("dev.conll"), "f1", test["f1"]);
    std::fs::write(d.join("input.jsonl"), "{\"tokens\": [\"we\", \"go\", \"to\", \"paris\"]}\n")
        .expect("input");
    let lines = predict(&delta, &d.join("input.jsonl"), d);
    assert_eq!(lines[0]["tags"].as_array().map(Vec::len), Some(4));
    assert_eq!(lines[0]["logits"].as_array().map(Vec::len), Some(4));
}

#[test]
fn encode_with_a_peft_lora_folder_on_deberta_reproduces_peft() {
    let _serial = pet_core::testing::serial();
    let dir = TempDir::new("deberta-encode-lora");
    let input = pretokenized_input(&fixtures("v3/expected.safetensors"), dir.path());
    let ours = encode_matches_peft(&fixtures("v3"), &fixtures("v3_lora"), &input, dir.path());
    assert!(!ours.contains_key("pooler_output"));
}

#[test]
fn ptuning_v2_question_answering_on_deberta_trains_answers_and_scores() {
    let _serial = pet_core::testing::serial();
    let dir = TempDir::new("deberta-qa");
    qa_round_trip(&fixtures("v3"), "ptuning-v2", 32, dir.path());
}
