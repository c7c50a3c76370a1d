//! `pet export --format peft` on the tiny BERT fixture: LoRA, P-Tuning v2 (deep prefix) and
//! prompt tuning checkpoints trained by `pet train` become PEFT SEQ_CLS adapter folders with the
//! classifier among the saved modules, and `pet predict` on the folder reproduces the
//! checkpoint's logits; PEFT itself loads the exported folders of committed checkpoints and
//! reproduces pet's logits (fixture `tests/parity/export/`); methods PEFT cannot hold are
//! refused by name.

use std::path::Path;

use pet_cli::device::{DeviceSpec, run_on};
use pet_cli::export::ExportJob;
use pet_cli::predict::{PredictJob, PredictOutcome};
use pet_cli::train::TrainJob;
use pet_core::peft::PeftAdapter;
use pet_core::precision::Precision;
use pet_core::safetensors_io::read_tensor_file;
use pet_core::testing::TempDir;
use serde_json::Value;

use crate::train::{job_on, write_data};

fn model() -> std::path::PathBuf {
    crate::fixtures::parity("encoders", "bert")
}

/// `pet predict` of `delta` (checkpoint or adapter folder) on `input`: every line's logits.
fn logits(delta: &Path, input: &Path, output: &Path) -> Vec<Vec<f64>> {
    let job = PredictJob {
        overwrite: true, // every method's logits go to the same file
        model: model().display().to_string(),
        delta: delta.to_path_buf(),
        input: input.to_path_buf(),
        output: Some(output.to_path_buf()),
        precision: Precision::F32,
    };
    assert!(matches!(run_on(DeviceSpec::Cpu, job).expect("predict"), PredictOutcome::Written(_)));
    std::fs::read_to_string(output)
        .expect("predictions")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            v["logits"].as_array().expect("logits").iter().filter_map(Value::as_f64).collect()
        })
        .collect()
}

/// Trains `method` on the tiny classification data in `dir`; the checkpoint's path.
fn trained(dir: &Path, method: &str) -> std::path::PathBuf {
    let job = job_on(&model(), dir, method);
    let output = job.output.clone();
    run_on(DeviceSpec::Cpu, TrainJob(job)).expect("training runs");
    output.join("delta.safetensors")
}

fn export(delta: &Path, output: &Path) -> anyhow::Result<&'static str> {
    let job = ExportJob {
        overwrite: false,
        model: model().display().to_string(),
        delta: delta.to_path_buf(),
        format: "peft".into(),
        output: output.to_path_buf(),
    };
    run_on(DeviceSpec::Cpu, job)
}

#[test]
fn exported_peft_adapters_reproduce_the_checkpoints_logits() {
    let _serial = pet_core::testing::serial();
    let dir = TempDir::new("export");
    let d = dir.path();
    write_data(d);
    let input = d.join("dev.jsonl");
    for (method, peft_type) in
        [("lora", "LORA"), ("ptuning-v2", "PREFIX_TUNING"), ("prompt", "PROMPT_TUNING")]
    {
        let delta = trained(d, method);
        let folder = d.join(format!("peft-{method}"));
        assert_eq!(export(&delta, &folder).expect("export"), peft_type);
        let adapter = PeftAdapter::read(&folder).expect("a PEFT folder");
        assert_eq!(adapter.task_type(), Some("SEQ_CLS"));
        assert_eq!(adapter.config["modules_to_save"], serde_json::json!(["classifier"]));
        let ours = logits(&delta, &input, &d.join("ours.jsonl"));
        let peft = logits(&folder, &input, &d.join("peft.jsonl"));
        assert_eq!(ours.len(), peft.len());
        let diff = ours.iter().flatten().zip(peft.iter().flatten()).map(|(a, b)| (a - b).abs());
        assert!(diff.fold(0.0, f64::max) < 1e-5, "{method}: {ours:?} vs {peft:?}");
    }
}

/// pet's logits against PEFT's on the same adapter: float32 kernels in another order.
const PEFT_LOGIT_TOLERANCE: f64 = 1e-5;

/// PEFT 0.17.1 loads the folders `pet export` wrote (fixture: `tests/parity/export/generate.py`,
/// which trained the committed checkpoints with `pet train`, exported them, and ran PEFT over
/// transformers' `BertForSequenceClassification` on `dev.jsonl`): exporting the committed
/// checkpoint writes the committed adapter again, and PEFT's logits on it are pet's.
#[test]
fn peft_loads_exported_adapters_and_reproduces_pets_logits() {
    let _serial = pet_core::testing::serial();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/export");
    let dir = TempDir::new("export-peft-parity");
    let input = fixture.join("dev.jsonl");
    for method in ["lora", "ptuning-v2", "prompt"] {
        let case = fixture.join(method);
        let delta = case.join("delta.safetensors");
        let folder = dir.path().join(method);
        export(&delta, &folder).expect("export");
        let written = PeftAdapter::read(&folder).expect("written adapter");
        let committed = PeftAdapter::read(&case.join("adapter")).expect("committed adapter");
        assert_eq!(written.config, committed.config, "{method}: adapter_config.json");
        assert_eq!(written.tensors, committed.tensors, "{method}: adapter_model.safetensors");
        let ours = logits(&delta, &input, &dir.path().join(format!("{method}.jsonl")));
        let expected = read_tensor_file(&case.join("expected.safetensors")).expect("expected");
        let theirs = expected.tensors["logits"].to_vec::<f32>().expect("floats");
        let ours: Vec<f64> = ours.into_iter().flatten().collect();
        assert_eq!(ours.len(), theirs.len(), "{method}: one row of logits per dev line");
        let worst =
            ours.iter().zip(&theirs).map(|(a, b)| (a - f64::from(*b)).abs()).fold(0.0, f64::max);
        eprintln!("{method}: max |pet - PEFT| = {worst:e}");
        assert!(worst < PEFT_LOGIT_TOLERANCE, "{method}: {ours:?} vs PEFT {theirs:?}");
    }
}

#[test]
fn methods_peft_cannot_hold_are_refused_by_name() {
    let _serial = pet_core::testing::serial();
    let dir = TempDir::new("export-refused");
    write_data(dir.path());
    let delta = trained(dir.path(), "bitfit");
    let err = format!("{:#}", export(&delta, &dir.path().join("peft")).expect_err("bitfit"));
    assert!(err.contains("`bitfit`") && err.contains("PEFT"), "{err}");
    let err = format!(
        "{:#}",
        export(&dir.path().join("missing"), &dir.path().join("p")).expect_err("none")
    );
    assert!(err.contains("missing"), "{err}");
}
