//! `pet predict` with a PEFT adapter folder that carries a task head (`modules_to_save`):
//! SEQ_CLS with LORA, TOKEN_CLS with PREFIX_TUNING (projection MLP) and QUESTION_ANS with
//! PROMPT_TUNING, trained by PEFT 0.17.1 over the tiny BERT fixture, and SEQ_CLS with LORA over
//! RoBERTa (its `classifier.dense` + `classifier.out_proj` head) reproduce PEFT's logits; so does
//! SEQ_CLS with LORA over DeBERTa-v3, whose ContextPooler PEFT does not save and the task
//! checkpoint folder provides.

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use pet_cli::device::{DeviceSpec, run_on};
use pet_cli::predict::{PredictJob, PredictOutcome};
use pet_core::precision::Precision;
use pet_core::safetensors_io::read_tensor_file;
use pet_core::task::Task;
use pet_core::task::restore::restore_task;
use pet_core::testing::TempDir;
use pet_core::testing::conformance::assert_close;
use pet_nlp::batch::PaddedBatch;
use pet_nlp::tasks::qa::QaBatch;
use pet_nlp::tasks::{Classification, QuestionAnswering};
use pet_nlp::tokenize::TextTokenizer;

type B = pet_core::testing::TestInner;
/// The backend restoring runs on; the restored models run on its inner backend `B`.
type Ad = pet_core::testing::TestBackend;

/// PEFT's logits against ours, relative to the largest reference value.
const LOGIT_TOLERANCE: f64 = 1e-5;

fn fixtures(case: &str) -> PathBuf {
    crate::fixtures::parity("encoders", case)
}

pub(crate) fn expected(case: &str, key: &str) -> TensorData {
    read_tensor_file(&fixtures(case).join("expected.safetensors")).expect("expected").tensors[key]
        .clone()
}

/// `pet predict` on the case's inputs.jsonl: every output line's `logits`, rows concatenated.
fn predicted_logits(case: &str) -> (Vec<f32>, Vec<serde_json::Value>) {
    predicted_logits_in(case, Precision::F32)
}

/// [`predicted_logits`] with the backbone's linears in `precision`.
fn predicted_logits_in(case: &str, precision: Precision) -> (Vec<f32>, Vec<serde_json::Value>) {
    predicted_logits_on(DeviceSpec::Cpu, case, precision)
}

/// [`predicted_logits_in`] on `device`.
pub(crate) fn predicted_logits_on(
    device: DeviceSpec,
    case: &str,
    precision: Precision,
) -> (Vec<f32>, Vec<serde_json::Value>) {
    let dir = TempDir::new(case);
    let output = dir.path().join("out.jsonl");
    let job = PredictJob {
        overwrite: false,
        model: fixtures("bert").display().to_string(),
        delta: fixtures(case),
        input: fixtures(case).join("inputs.jsonl"),
        output: Some(output.clone()),
        precision,
    };
    assert!(matches!(run_on(device, job).expect("predict"), PredictOutcome::Written(_)));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .expect("output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let logits = lines.iter().flat_map(|l| flat_value(&l["logits"])).collect();
    (logits, lines)
}

/// The numbers of a nested JSON array, in order.
fn flat_value(v: &serde_json::Value) -> Vec<f32> {
    match v {
        serde_json::Value::Array(items) => items.iter().flat_map(flat_value).collect(),
        other => vec![other.as_f64().expect("number") as f32],
    }
}

pub(crate) fn assert_logits(what: &str, ours: Vec<f32>, theirs: TensorData) {
    assert_logits_within(what, ours, theirs, LOGIT_TOLERANCE);
}

fn assert_logits_within(what: &str, ours: Vec<f32>, theirs: TensorData, tolerance: f64) {
    let device = Default::default();
    let theirs = theirs.convert::<f32>().into_vec::<f32>().expect("floats");
    assert_eq!(ours.len(), theirs.len(), "{what}: number of logits");
    let tensor = |values: &[f32]| Tensor::<B, 1>::from_floats(values, &device);
    assert_close(what, tensor(&ours), tensor(&theirs), tolerance);
}

#[test]
fn a_seq_cls_lora_adapter_reproduces_peft_logits_and_labels() {
    let (logits, lines) = predicted_logits("bert_peft_seq_cls");
    assert_logits("SEQ_CLS logits", logits, expected("bert_peft_seq_cls", "logits"));
    let theirs = expected("bert_peft_seq_cls", "logits").into_vec::<f32>().expect("floats");
    for (row, line) in lines.iter().enumerate() {
        let best = (0..3)
            .max_by(|&a, &b| theirs[row * 3 + a].total_cmp(&theirs[row * 3 + b]))
            .expect("classes");
        assert_eq!(line["label"], format!("LABEL_{best}"), "row {row}");
    }
}

/// bf16 keeps 8 significant bits of every linear operand: the tiny model's logits move by up to
/// a few 1e-3 of their scale.
const BF16_LOGIT_TOLERANCE: f64 = 2e-2;

#[test]
fn bf16_predictions_stay_close_to_f32_and_peft() {
    for case in ["bert_peft_seq_cls", "bert_peft_token_cls"] {
        let (bf16_logits, _) = predicted_logits_in(case, Precision::Bf16);
        let (f32_logits, _) = predicted_logits(case);
        assert_ne!(bf16_logits, f32_logits, "{case}: --precision bf16 changed nothing");
        assert_logits_within(case, bf16_logits, expected(case, "logits"), BF16_LOGIT_TOLERANCE);
    }
}

#[test]
fn a_token_cls_prefix_adapter_reproduces_peft_logits_at_first_subwords() {
    let (logits, lines) = predicted_logits("bert_peft_token_cls");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["tags"].as_array().map(Vec::len), Some(6));
    assert_logits("TOKEN_CLS logits", logits, expected("bert_peft_token_cls", "logits"));
}

#[test]
fn a_question_ans_prompt_adapter_reproduces_peft_start_and_end_logits() {
    let device = Default::default();
    let restored = restore_task::<Ad, QuestionAnswering>(
        &fixtures("bert"),
        &fixtures("bert_peft_qa"),
        &device,
    )
    .expect("restore");
    let max_length = <QuestionAnswering as Task<Ad>>::options(&restored.task).max_length;
    let model = restored.model;
    let tokenizer = TextTokenizer::from_file(&fixtures("bert").join("tokenizer.json"), max_length)
        .expect("tokenizer");
    let text = std::fs::read_to_string(fixtures("bert_peft_qa").join("inputs.jsonl")).expect("in");
    let rows: Vec<_> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            let field = |k: &str| v[k].as_str().expect("string").to_string();
            tokenizer.encode(&field("question"), Some(&field("context"))).expect("encode")
        })
        .collect();
    let inputs = PaddedBatch::new(&rows.iter().collect::<Vec<_>>(), tokenizer.pad_id());
    assert!(!model.token_types, "PEFT's QA prompt learning forwards no token type ids");
    let batch = QaBatch { inputs, starts: vec![0; 2], ends: vec![0; 2], features: vec![0, 1] };
    let (start, end) = model.logits(&batch);
    for (what, ours) in [("start_logits", start), ("end_logits", end)] {
        let theirs =
            Tensor::<B, 2>::from_data(expected("bert_peft_qa", what).convert::<f32>(), &device);
        assert_close(what, ours, theirs, LOGIT_TOLERANCE);
    }
}

#[test]
fn an_adapter_without_a_task_head_is_refused_by_name() {
    let dir = TempDir::new("peft-no-task");
    let job = PredictJob {
        overwrite: false,
        model: fixtures("roberta").display().to_string(),
        delta: fixtures("roberta_lora"),
        input: fixtures("bert_peft_seq_cls").join("inputs.jsonl"),
        output: Some(dir.path().join("out.jsonl")),
        precision: Precision::F32,
    };
    let err = format!("{:#}", run_on(DeviceSpec::Cpu, job).expect_err("no task head"));
    assert!(err.contains("adapter_config.json") && err.contains("FEATURE_EXTRACTION"), "{err}");
}

/// The classifier restored from `model` and the SEQ_CLS adapter `adapter` gives `adapter`'s
/// expected logits on the inputs of `inputs`.
fn check_seq_cls(model: &Path, adapter: &Path, inputs: &Path) {
    check_seq_cls_on::<Ad>(model, adapter, inputs);
}

/// [`check_seq_cls`] on backend `A` (restored with autodiff, run on its inner backend).
pub(crate) fn check_seq_cls_on<A: AutodiffBackend>(model: &Path, adapter: &Path, inputs: &Path) {
    let device = Default::default();
    let restored = restore_task::<A, Classification>(model, adapter, &device).expect("restore");
    let model = restored.model;
    assert!(model.head.dense.is_some(), "a dense layer on the first position");
    assert_eq!(restored.task.labels().len(), 3);
    let inputs = read_tensor_file(inputs).expect("inputs").tensors;
    let [batch, seq] = [inputs["input_ids"].shape[0], inputs["input_ids"].shape[1]];
    let batch = PaddedBatch {
        batch,
        seq,
        input_ids: inputs["input_ids"].clone().convert::<i64>().into_vec().expect("ids"),
        token_type_ids: vec![0; batch * seq],
        attention_mask: inputs["attention_mask"].clone().convert::<f32>().into_vec().expect("mask"),
    };
    let expected = read_tensor_file(&adapter.join("expected.safetensors")).expect("expected");
    let theirs = Tensor::<A::InnerBackend, 2>::from_data(
        expected.tensors["logits"].clone().convert::<f32>(),
        &device,
    );
    assert_close("SEQ_CLS logits", model.logits(&batch), theirs, LOGIT_TOLERANCE);
}

/// RoBERTa's SEQ_CLS case: the model, the adapter and the inputs.
pub(crate) fn roberta_seq_cls() -> [PathBuf; 3] {
    [
        fixtures("roberta"),
        fixtures("roberta_peft_seq_cls"),
        fixtures("roberta/expected.safetensors"),
    ]
}

/// DeBERTa-v3's SEQ_CLS case: the task folder, the adapter and the inputs.
pub(crate) fn deberta_seq_cls() -> [PathBuf; 3] {
    let deberta = |case: &str| crate::fixtures::parity("deberta", case);
    [deberta("v3_seq_cls"), deberta("v3_peft_seq_cls"), deberta("v3").join("expected.safetensors")]
}

#[test]
fn a_roberta_seq_cls_adapter_reads_robertas_dense_and_out_proj_head() {
    let [model, adapter, inputs] = roberta_seq_cls();
    check_seq_cls(&model, &adapter, &inputs);
}

#[test]
fn a_deberta_seq_cls_adapter_takes_the_context_pooler_from_the_task_folder() {
    let deberta = |case: &str| crate::fixtures::parity("deberta", case);
    let [model, adapter, inputs] = deberta_seq_cls();
    check_seq_cls(&model, &adapter, &inputs);
    // Over a bare encoder the pooler is missing, and the error names it.
    let err = restore_task::<Ad, Classification>(&deberta("v3"), &adapter, &Default::default())
        .expect_err("no pooler");
    assert!(format!("{err:#}").contains("dense.weight"), "{err:#}");
}
