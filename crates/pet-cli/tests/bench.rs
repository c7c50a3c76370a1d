//! `pet bench` on the tiny BERT fixture folder: every mode and method measures one step and
//! reports the JSON fields the comparison with PyTorch reads. No speed is asserted.

use std::path::Path;
use std::process::Command;

use pet_cli::bench::{BenchArgs, BenchJob, BenchMode};
use pet_cli::device::{DeviceSpec, run_on};
use pet_core::precision::Precision;

fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pet-nlp/tests/parity/encoders/bert")
        .display()
        .to_string()
}

fn args(mode: BenchMode, method: &str) -> BenchArgs {
    BenchArgs {
        model: fixture(),
        mode,
        method: method.to_string(),
        batch: 2,
        seq: 8,
        prefix: 4,
        steps: 1,
        warmup: 1,
        seed: 42,
        precision: Precision::F32,
    }
}

#[test]
fn every_mode_and_method_reports_a_measurement_line() {
    for mode in [BenchMode::Train, BenchMode::Infer] {
        for method in ["ptuning-v2", "lora", "full"] {
            let m = run_on(DeviceSpec::Cpu, BenchJob(args(mode, method))).expect("bench runs");
            let line: serde_json::Value =
                serde_json::to_value(&m).expect("the measurement serializes");
            assert_eq!(line["impl"], "pet");
            assert_eq!(line["mode"], if mode == BenchMode::Train { "train" } else { "infer" });
            assert_eq!(line["method"], method);
            assert_eq!((line["batch"].as_u64(), line["seq"].as_u64()), (Some(2), Some(8)));
            let prefix = if method == "ptuning-v2" { 4 } else { 0 };
            assert_eq!(line["prefix"].as_u64(), Some(prefix), "{line}");
            assert!(line["samples_per_sec"].as_f64().is_some_and(|s| s > 0.0), "{line}");
            assert!(line["peak_rss_mib"].as_f64().is_some_and(|r| r > 0.0), "{line}");
            assert!(line["threads"].as_u64().is_some_and(|t| t >= 1), "{line}");
            assert_eq!(line["device"], "flex");
            assert_eq!(line["precision"], "f32");
            assert!(line.get("logit_error").is_none(), "{line}");
        }
    }
}

#[test]
fn bf16_inference_reports_its_logit_error_against_f32() {
    for method in ["ptuning-v2", "lora", "full"] {
        let args = BenchArgs { precision: Precision::Bf16, ..args(BenchMode::Infer, method) };
        let m = run_on(DeviceSpec::Cpu, BenchJob(args)).expect("bf16 bench runs");
        let line: serde_json::Value = serde_json::to_value(&m).expect("the measurement serializes");
        assert_eq!(line["precision"], "bf16");
        let error = &line["logit_error"];
        let max_abs = error["max_abs"].as_f64().expect("max_abs");
        let scale = error["max_abs_f32"].as_f64().expect("max_abs_f32");
        // bf16 moves the logits, but only by rounding: far less than their own size.
        assert!(max_abs > 0.0 && max_abs < 0.1 * scale, "{line}");
        assert!(
            error["argmax_agreement"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)),
            "{line}"
        );
    }
}

#[test]
fn bf16_inference_runs_on_roberta_and_deberta_too() {
    for (group, case) in [("encoders", "roberta"), ("deberta", "v3")] {
        let model = crate::fixtures::parity(group, case).display().to_string();
        let args =
            BenchArgs { model, precision: Precision::Bf16, ..args(BenchMode::Infer, "full") };
        let m = run_on(DeviceSpec::Cpu, BenchJob(args)).expect("bf16 bench runs");
        let line: serde_json::Value = serde_json::to_value(&m).expect("the measurement serializes");
        let error = &line["logit_error"];
        let (max_abs, scale) = (error["max_abs"].as_f64(), error["max_abs_f32"].as_f64());
        assert!(
            matches!((max_abs, scale), (Some(e), Some(s)) if e > 0.0 && e < 0.1 * s),
            "{case}: {line}"
        );
    }
}

#[test]
fn bf16_training_is_refused() {
    let args = BenchArgs { precision: Precision::Bf16, ..args(BenchMode::Train, "lora") };
    let err = run_on(DeviceSpec::Cpu, BenchJob(args)).expect_err("bf16 training");
    assert!(format!("{err:#}").contains("inference"), "{err:#}");
}

#[test]
fn an_unknown_method_is_a_clear_error() {
    let err = run_on(DeviceSpec::Cpu, BenchJob(args(BenchMode::Infer, "lorra")))
        .expect_err("unknown method");
    assert!(format!("{err:#}").contains("lorra"), "{err:#}");
}

/// The `pet` binary with `PET_CPU_LEVEL` set to `cap`: one inference step's measurement line,
/// or the error.
fn bench_under(cap: &str) -> Result<serde_json::Value, String> {
    let fixture = fixture();
    let args = ["bench", "--model", &fixture, "--mode", "infer", "--batch", "2", "--seq", "8"];
    let output = Command::new(env!("CARGO_BIN_EXE_pet"))
        .args(args)
        .args(["--steps", "1"])
        .env(pet_gemm::LEVEL_VARIABLE, cap)
        .output()
        .map_err(|e| e.to_string())?;
    match output.status.success() {
        true => serde_json::from_slice(&output.stdout).map_err(|e| e.to_string()),
        false => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
    }
}

#[test]
fn the_kernel_level_follows_the_cap_and_a_bad_cap_is_refused() {
    let composed = bench_under("none").expect("bench without pet's kernels");
    assert_eq!(composed["kernel_level"], "none", "{composed}");
    for level in pet_gemm::Level::available() {
        let line = bench_under(level.name()).expect("bench at a level this CPU runs");
        assert_eq!(line["kernel_level"], level.name(), "{line}");
    }
    let err = bench_under("sse2").expect_err("no such level");
    assert!(err.contains("PET_CPU_LEVEL=\"sse2\" is not a level"), "{err}");
}
