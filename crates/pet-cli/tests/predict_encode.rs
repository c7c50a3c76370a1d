//! `pet predict`, `pet eval` and `pet encode` on the tiny fixture folders: a delta trained by
//! `pet train` is restored from its checkpoint alone, and a PEFT adapter folder passed to
//! `encode` reproduces PEFT's hidden states.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::TensorData;

use pet_cli::device::{DeviceSpec, run_on};
use pet_cli::encode::EncodeJob;
use pet_cli::predict::{PredictJob, PredictOutcome};
use pet_cli::train::{Job, TrainJob};
use pet_core::precision::Precision;
use pet_core::safetensors_io::read_tensor_file;
use pet_core::testing::TempDir;

fn fixtures(case: &str) -> PathBuf {
    crate::fixtures::parity("encoders", case)
}

fn train(dir: &Path) -> (PathBuf, f64) {
    let line =
        |text: &str, label: &str| format!("{{\"text\": \"{text}\", \"label\": \"{label}\"}}\n");
    let rows: String = (0..12)
        .map(|i| {
            if i % 2 == 0 {
                line("the cat sat on the mat", "cat")
            } else {
                line("a big dog is running", "dog")
            }
        })
        .collect();
    std::fs::write(dir.join("data.jsonl"), &rows).expect("data");
    let text = format!(
        "model = \"{model}\"\ntask = \"classification\"\ntrain = \"{d}/data.jsonl\"\ndev = \"{d}/data.jsonl\"\n\
         test = \"{d}/data.jsonl\"\nmethod = \"prefix+bitfit\"\nmax_length = 16\nbatch_size = 4\noutput = \"{d}/out\"\n\
         [optim]\nepochs = 2\nlearning_rate = 0.05\nprogress = false\n",
        model = fixtures("bert").display(),
        d = dir.display()
    );
    let summary =
        run_on(DeviceSpec::Cpu, TrainJob(Job::parse(&text, "job").expect("job"))).expect("train");
    let accuracy = summary.test.expect("test metrics")["accuracy"];
    (dir.join("out/delta.safetensors"), accuracy)
}

#[test]
fn predict_and_eval_restore_the_trained_classifier() {
    let _serial = pet_core::testing::serial();
    let dir = TempDir::new("predict");
    let (delta, trained_accuracy) = train(dir.path());
    let model = fixtures("bert").display().to_string();
    let input = dir.path().join("data.jsonl");
    let scored = run_on(
        DeviceSpec::Cpu,
        PredictJob {
            overwrite: false,
            model: model.clone(),
            delta: delta.clone(),
            input: input.clone(),
            output: None,
            precision: Precision::F32,
        },
    )
    .expect("eval");
    let PredictOutcome::Scored(metrics) = scored else { panic!("eval scores") };
    assert!(
        (metrics["accuracy"] - trained_accuracy).abs() < 1e-12,
        "{metrics:?} vs {trained_accuracy}"
    );
    let output = dir.path().join("predictions.jsonl");
    let written = run_on(
        DeviceSpec::Cpu,
        PredictJob {
            model,
            delta,
            input,
            output: Some(output.clone()),
            precision: Precision::F32,
            overwrite: false,
        },
    )
    .expect("predict");
    assert!(matches!(written, PredictOutcome::Written(12)));
    let text = std::fs::read_to_string(&output).expect("predictions");
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), 12);
    assert_eq!(lines[0]["logits"].as_array().map(Vec::len), Some(2));
    let right = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| l["label"] == if i % 2 == 0 { "cat" } else { "dog" })
        .count();
    assert!((right as f64 / 12.0 - trained_accuracy).abs() < 1e-12);
}

/// The inputs of a parity fixture's `expected.safetensors` (`input_ids`, `attention_mask`) as
/// pre-tokenized JSONL lines in `dir/input.jsonl`.
pub(crate) fn pretokenized_input(expected: &Path, dir: &Path) -> PathBuf {
    let expected = read_tensor_file(expected).expect("fixture").tensors;
    let ids = expected["input_ids"].clone().convert::<i64>().into_vec::<i64>().expect("ids");
    let mask = expected["attention_mask"].clone().convert::<f32>().into_vec::<f32>().expect("mask");
    let [rows, seq] = [expected["input_ids"].shape[0], expected["input_ids"].shape[1]];
    let lines: String = (0..rows)
        .map(|r| {
            let row = &ids[r * seq..(r + 1) * seq];
            let m: Vec<i64> = mask[r * seq..(r + 1) * seq].iter().map(|&v| v as i64).collect();
            format!("{}\n", serde_json::json!({"input_ids": row, "attention_mask": m}))
        })
        .collect();
    let input = dir.join("input.jsonl");
    std::fs::write(&input, lines).expect("input");
    input
}

/// `pet encode` of `model` with the PEFT adapter folder `adapter` over the two rows of `input`
/// gives the adapter's `expected.safetensors` hidden states; returns what it wrote.
pub(crate) fn encode_matches_peft(
    model: &Path,
    adapter: &Path,
    input: &Path,
    dir: &Path,
) -> BTreeMap<String, TensorData> {
    let case = adapter.display().to_string();
    let output = dir.join("encoded.safetensors");
    let job = EncodeJob {
        overwrite: true, // callers encode several adapters into the same file
        model: model.display().to_string(),
        input: input.to_path_buf(),
        output: output.clone(),
        delta: Some(adapter.to_path_buf()),
        max_length: 64,
    };
    assert_eq!(run_on(DeviceSpec::Cpu, job).expect("encode"), 2);
    let ours = read_tensor_file(&output).expect("output").tensors;
    let theirs = read_tensor_file(&adapter.join("expected.safetensors")).expect("expected").tensors;
    let a = ours["last_hidden_state"].clone().into_vec::<f32>().expect("floats");
    let b = theirs["last_hidden_state"].clone().into_vec::<f32>().expect("floats");
    assert_eq!(ours["last_hidden_state"].shape, theirs["last_hidden_state"].shape, "{case}");
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(diff < 2e-5, "{case}: max abs diff {diff}");
    assert_eq!(
        ours["attention_mask"].shape.to_vec(),
        vec![2, theirs["last_hidden_state"].shape[1]]
    );
    ours
}

#[test]
fn encode_with_a_peft_adapter_folder_reproduces_peft() {
    let _serial = pet_core::testing::serial();
    let dir = TempDir::new("encode-peft");
    let input = pretokenized_input(&fixtures("roberta/expected.safetensors"), dir.path());
    for case in ["roberta_prompt", "roberta_prefix", "roberta_lora"] {
        let ours = encode_matches_peft(&fixtures("roberta"), &fixtures(case), &input, dir.path());
        assert!(ours.contains_key("pooler_output"));
    }
}

#[test]
fn encode_text_lines_with_the_model_tokenizer_and_name_bad_lines() {
    let dir = TempDir::new("encode-text");
    let input = dir.path().join("input.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"the cat sat\"}\n{\"text\": \"a dog\", \"text_pair\": \"it is big\"}\n",
    )
    .expect("input");
    let output = dir.path().join("out.safetensors");
    let job = |input: PathBuf| EncodeJob {
        overwrite: true, // the bad file's run must reach its bad line

        model: fixtures("bert").display().to_string(),
        input,
        output: output.clone(),
        delta: None,
        max_length: 16,
    };
    assert_eq!(run_on(DeviceSpec::Cpu, job(input)).expect("encode"), 2);
    let file = read_tensor_file(&output).expect("output").tensors;
    assert_eq!(file["last_hidden_state"].shape.to_vec(), vec![2, 8, 16]);
    let mask = file["attention_mask"].clone().into_vec::<i64>().expect("ints");
    assert_eq!(mask, vec![1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"text\": \"ok\"}\n{\"txt\": 3}\n").expect("bad");
    let err = format!("{:#}", run_on(DeviceSpec::Cpu, job(bad.clone())).expect_err("bad line"));
    assert!(err.contains(&format!("{}:2", bad.display())), "{err}");
}

#[test]
fn predict_and_eval_restore_a_tagger_with_its_crf() {
    let _serial = pet_core::testing::serial();
    let dir = TempDir::new("predict-tagger");
    let d = dir.path();
    let sentences =
        ["we\tO\ngo\tO\nto\tO\nparis\tB-LOC\n", "new\tB-LOC\nyork\tI-LOC\nis\tO\nbig\tO\n"];
    let train: Vec<&str> = (0..10).map(|i| sentences[i % 2]).collect();
    std::fs::write(d.join("train.conll"), train.join("\n")).expect("train");
    std::fs::write(d.join("dev.conll"), sentences.join("\n")).expect("dev");
    let text = format!(
        "model = \"{model}\"\ntask = \"tagging\"\ntrain = \"{d}/train.conll\"\ndev = \"{d}/dev.conll\"\n\
         test = \"{d}/dev.conll\"\nmethod = \"prefix\"\nmax_length = 16\nbatch_size = 4\ncrf = true\n\
         output = \"{d}/out\"\n[optim]\nepochs = 2\nlearning_rate = 0.05\nprogress = false\n",
        model = fixtures("bert").display(),
        d = d.display()
    );
    let summary =
        run_on(DeviceSpec::Cpu, TrainJob(Job::parse(&text, "job").expect("job"))).expect("train");
    let delta = d.join("out/delta.safetensors");
    let model = fixtures("bert").display().to_string();
    let eval = PredictJob {
        overwrite: false,
        model: model.clone(),
        delta: delta.clone(),
        input: d.join("dev.conll"),
        output: None,
        precision: Precision::F32,
    };
    let PredictOutcome::Scored(metrics) = run_on(DeviceSpec::Cpu, eval).expect("eval") else {
        panic!("scores")
    };
    let trained = summary.test.expect("test metrics");
    assert!((metrics["f1"] - trained["f1"]).abs() < 1e-12, "{metrics:?} vs {trained:?}");
    std::fs::write(
        d.join("input.jsonl"),
        "{\"tokens\": [\"we\", \"go\", \"to\", \"paris\"]}\n{\"text\": \"new york is big\"}\n",
    )
    .expect("input");
    let output = d.join("tags.jsonl");
    let job = PredictJob {
        overwrite: false,
        model,
        delta,
        input: d.join("input.jsonl"),
        output: Some(output.clone()),
        precision: Precision::F32,
    };
    assert!(matches!(run_on(DeviceSpec::Cpu, job).expect("predict"), PredictOutcome::Written(2)));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .expect("tags")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines[1]["tokens"], serde_json::json!(["new", "york", "is", "big"]));
    assert_eq!(lines[1]["tags"].as_array().map(Vec::len), Some(4));
    let logits = lines[0]["logits"].as_array().expect("logits");
    assert_eq!(
        (logits.len(), logits[0].as_array().map(Vec::len)),
        (4, Some(3)),
        "4 words x 3 tags (B-LOC, I-LOC, O)"
    );
}
