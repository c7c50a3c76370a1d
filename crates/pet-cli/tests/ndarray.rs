//! The model tests CI also runs on Burn's `ndarray` backend (built with `--features ndarray`,
//! selected by `--device ndarray`): PEFT adapters over BERT, RoBERTa and DeBERTa-v3 reproduce
//! PEFT's logits, and a training step lowers the loss. pet's fused kernels and matrix products
//! belong to burn-flex, so these check the models on Burn's composed operations alone.

use burn::backend::{Autodiff, NdArray};
use pet_cli::device::{DeviceSpec, run_on};
use pet_cli::predict::PredictJob;
use pet_core::precision::Precision;
use pet_core::testing::TempDir;

use crate::predict_peft::{
    assert_logits, check_seq_cls_on, deberta_seq_cls, expected, predicted_logits_on,
    roberta_seq_cls,
};

#[test]
fn bert_adapters_reproduce_peft_logits_through_the_ndarray_device() {
    for case in ["bert_peft_seq_cls", "bert_peft_token_cls"] {
        let (logits, _) = predicted_logits_on(DeviceSpec::NdArray, case, Precision::F32);
        assert_logits(case, logits, expected(case, "logits"));
    }
}

#[test]
fn roberta_and_deberta_adapters_reproduce_peft_logits_on_ndarray() {
    for [model, adapter, inputs] in [roberta_seq_cls(), deberta_seq_cls()] {
        check_seq_cls_on::<Autodiff<NdArray>>(&model, &adapter, &inputs);
    }
}

#[test]
fn one_training_step_on_ndarray() {
    crate::device_smoke::step_lowers_loss(DeviceSpec::NdArray);
}

#[test]
fn bf16_on_ndarray_is_refused_by_name_not_a_crash() {
    let dir = TempDir::new("ndarray-bf16");
    let case = crate::fixtures::parity("encoders", "bert_peft_seq_cls");
    let job = PredictJob {
        overwrite: false,
        model: crate::fixtures::parity("encoders", "bert").display().to_string(),
        delta: case.clone(),
        input: case.join("inputs.jsonl"),
        output: Some(dir.path().join("out.jsonl")),
        precision: Precision::Bf16,
    };
    let err = format!("{:#}", run_on(DeviceSpec::NdArray, job).expect_err("no bf16 on ndarray"));
    assert!(err.contains("precision") && err.contains("bf16") && err.contains("f32"), "{err}");
    assert!(!dir.path().join("out.jsonl").exists(), "nothing is written");
}
