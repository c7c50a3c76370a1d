//! Parity of the BERT and RoBERTa backbones with transformers 4.57.6 on tiny random checkpoints
//! (fixture: `tests/parity/encoders/generate.py`), loaded from their folders through
//! [`load_encoder`]: hidden states, pooler output and the gradient of every parameter; the
//! encoder of a task checkpoint; PEFT 0.17.1 adapters on RoBERTa.

use std::path::Path;

use pet_core::blocks::PostNormEncoder;
use pet_core::peft::PeftAdapter;
use pet_core::testing::TestBackend as B;
use pet_core::testing::conformance::assert_close;
use pet_core::{Backbone, Delta, NoDelta};
use pet_nlp::{NlpError, load_encoder, load_post_norm};

use crate::fixtures::{self, HIDDEN_TOLERANCE, check_gradients, input, tensor};

/// The fixture family of these tests (`tests/parity/encoders`).
const FAMILY: &str = "encoders";

fn load(name: &str) -> PostNormEncoder<B> {
    load_post_norm::<B>(&fixtures::case(FAMILY, name), &Default::default()).expect("folder loads").0
}

/// Hidden states, pooler output and every parameter's gradient against transformers.
fn check_backbone(name: &str) {
    let _serial = pet_core::testing::serial();
    let model = load(name);
    let expected = fixtures::expected(FAMILY, name);
    let out = model.forward_with(input(&expected), &NoDelta);
    assert_close(
        "last_hidden_state",
        out.hidden.clone(),
        tensor(&expected["last_hidden_state"]),
        HIDDEN_TOLERANCE,
    );
    let pooled = out.pooled.expect("a pooler");
    assert_close(
        "pooler_output",
        pooled.clone(),
        tensor(&expected["pooler_output"]),
        HIDDEN_TOLERANCE,
    );
    let loss = (out.hidden * tensor::<3>(&expected["probe"])).sum() + pooled.sum();
    check_gradients(name, &model, loss, &expected);
}

#[test]
fn bert_matches_transformers_forward_and_gradients() {
    check_backbone("bert");
}

#[test]
fn roberta_matches_transformers_forward_and_gradients_with_padding_offset_positions() {
    check_backbone("roberta");
}

#[test]
fn a_task_checkpoint_loads_its_encoder_and_reports_the_head() {
    let _serial = pet_core::testing::serial();
    let (model, folder, report) =
        load_encoder::<B>(&fixtures::case(FAMILY, "bert_task"), &Default::default())
            .expect("task folder");
    assert_eq!(folder.key_prefix, "bert.");
    assert_eq!(
        report.ignored,
        vec!["classifier.bias".to_string(), "classifier.weight".to_string()]
    );
    let expected = fixtures::expected(FAMILY, "bert");
    let hidden = model.forward_with(input(&expected), &NoDelta).hidden;
    assert_close(
        "last_hidden_state",
        hidden,
        tensor(&expected["last_hidden_state"]),
        HIDDEN_TOLERANCE,
    );
    assert_eq!(model.identity().weights_sha256.as_deref(), Some(folder.weights_sha256.as_str()));
}

fn peft_hidden<D: Delta<B>>(name: &str, delta: &D) {
    let model = load("roberta");
    let hidden = model.forward_with(input(&fixtures::expected(FAMILY, "roberta")), delta).hidden;
    assert_close(
        "last_hidden_state",
        hidden,
        tensor(&fixtures::expected(FAMILY, name)["last_hidden_state"]),
        HIDDEN_TOLERANCE,
    );
}

#[test]
fn peft_lora_on_roberta_reproduces_peft() {
    let _serial = pet_core::testing::serial();
    let model = load("roberta");
    let lora = PeftAdapter::read(&fixtures::case(FAMILY, "roberta_lora"))
        .expect("adapter")
        .to_lora::<B>(&model.linear_sites(), &Default::default())
        .expect("lora");
    assert_eq!(lora.sites.len(), 2 * 5, "query, key, value, attention.output.dense, output.dense");
    peft_hidden("roberta_lora", &lora);
}

#[test]
fn peft_prefix_on_roberta_reproduces_peft_with_offset_positions() {
    let _serial = pet_core::testing::serial();
    let model = load("roberta");
    let prefix = PeftAdapter::read(&fixtures::case(FAMILY, "roberta_prefix"))
        .expect("adapter")
        .to_prefix::<B>(model.shape(), &Default::default())
        .expect("prefix");
    peft_hidden("roberta_prefix", &prefix);
}

#[test]
fn peft_prompt_on_roberta_reproduces_peft_with_sequential_positions() {
    let _serial = pet_core::testing::serial();
    let model = load("roberta");
    let prompt = PeftAdapter::read(&fixtures::case(FAMILY, "roberta_prompt"))
        .expect("adapter")
        .to_prompt::<B>(model.shape(), &Default::default())
        .expect("prompt");
    peft_hidden("roberta_prompt", &prompt);
}

#[test]
fn bad_folders_name_the_file_and_key() {
    let _serial = pet_core::testing::serial();
    let err = load_encoder::<B>(Path::new("/nonexistent/model"), &Default::default())
        .expect_err("no folder");
    assert!(err.to_string().contains("/nonexistent/model/config.json"), "{err}");

    let dir = fixtures::copy_case(FAMILY, "bert", "truncated-config");
    std::fs::write(dir.join("config.json"), "{\"model_type\": \"bert\", \"hidden_size\": ")
        .expect("write");
    let err = load_encoder::<B>(&dir, &Default::default()).expect_err("bad json").to_string();
    assert!(err.contains("config.json"), "{err}");

    let dir = fixtures::copy_case(FAMILY, "bert", "wrong-sizes");
    let config = std::fs::read_to_string(dir.join("config.json"))
        .expect("read")
        .replace("\"intermediate_size\": 24", "\"intermediate_size\": 20");
    std::fs::write(dir.join("config.json"), config).expect("write");
    // The config is checked against the file's header before the model is built: the error
    // names the config field and the file's key.
    match load_encoder::<B>(&dir, &Default::default()) {
        Err(NlpError::Config { field, reason, .. }) => {
            assert_eq!(field, "intermediate_size");
            assert!(
                reason.contains("model.safetensors")
                    && reason.contains("intermediate.dense.weight"),
                "{reason}"
            )
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}
