//! Property-based ("fuzz") tests of the model config parsers: BERT / RoBERTa and DeBERTa
//! `config.json`, as arbitrary text and as the fixtures' configs with fields set to hostile
//! values (huge, zero, negative, fractional, of the wrong type). Each gives `Ok` or a typed error,
//! never a panic; a config that passes is checked against the fixture's `model.safetensors`
//! header, so what it allocates is what the file holds, and then loads through
//! [`load_encoder`] (Ok or a typed error).
//!
//! Cases per target: proptest's `PROPTEST_CASES` (256 by default). The long run:
//! `PROPTEST_CASES=1000000 cargo test --release -p pet-nlp fuzz_configs`.

use std::path::{Path, PathBuf};

use pet_core::safetensors_io::{TensorHeader, read_header};
use pet_core::testing::TestInner as B;
use pet_nlp::bert::HfEncoderConfig;
use pet_nlp::deberta::{DebertaV2Config, checked_key_prefix};
use pet_nlp::folder::{parse_json_config, post_norm_config};
use pet_nlp::load_encoder;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};

use crate::fixtures;

fn config() -> Config {
    Config { failure_persistence: None, ..Config::default() }
}

/// A fixture model folder copied once per target and thread: its config text, its weights' header, and a
/// folder whose `config.json` each case may overwrite.
struct Case {
    config: Value,
    header: TensorHeader,
    total: usize,
    dir: PathBuf,
}

fn case(family: &str, name: &str, target: &str) -> Case {
    let dir = fixtures::copy_case(family, name, &format!("fuzz-{target}"));
    let text = std::fs::read_to_string(dir.join("config.json")).expect("config");
    let header = read_header(&dir.join("model.safetensors")).expect("header");
    let total = header.shapes.values().map(|s| s.iter().product::<usize>()).sum();
    Case { config: serde_json::from_str(&text).expect("json"), header, total, dir }
}

/// Mostly numbers a size or rate field takes by type (small, huge, zero, fractional,
/// out-of-range), and sometimes a value of another type.
fn hostile_value() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(100_000)),
        Just(json!(2_000_000_000u64)),
        Just(json!(1u64 << 40)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MAX)),
        Just(json!(-1)),
        Just(json!(i64::MIN)),
        (0usize..70).prop_map(Value::from),
        (-2.0f64..3.0).prop_map(Value::from),
        Just(json!(1e308)),
        Just(json!(1e-300)),
        Just(json!(-0.0)),
        any::<f64>().prop_map(Value::from),
    ];
    let other = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop::sample::select(vec![
            "gelu",
            "relu",
            "tanh",
            "mish",
            "c2p|p2c",
            "p2c",
            "p2p",
            "layer_norm",
            "none",
            "absolute",
            "relative_key",
            "bert",
            "roberta",
            "deberta-v2",
            "gpt2",
        ])
        .prop_map(Value::from),
        ".{0,10}".prop_map(Value::from),
        prop::collection::vec(prop::sample::select(vec!["c2p", "p2c", "x"]), 0..3)
            .prop_map(Value::from),
        prop::collection::btree_map("[0-9]{1,2}", "[a-z]{0,4}", 0..3).prop_map(|m| json!(m)),
    ];
    prop_oneof![4 => number, 1 => other]
}

const BERT_FIELDS: [&str; 17] = [
    "model_type",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "pad_token_id",
    "position_embedding_type",
    "is_decoder",
    "id2label",
    "not_a_config_field",
];

const DEBERTA_FIELDS: [&str; 31] = [
    "model_type",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "relative_attention",
    "max_relative_positions",
    "position_buckets",
    "pos_att_type",
    "share_att_key",
    "norm_rel_ebd",
    "conv_kernel_size",
    "conv_act",
    "conv_groups",
    "position_biased_input",
    "pad_token_id",
    "embedding_size",
    "attention_head_size",
    "pooler_hidden_size",
    "pooler_hidden_act",
    "pooler_dropout",
    "cls_dropout",
    "id2label",
    "not_a_config_field",
];

/// `a * b` (and more) within `limit`, without overflow.
fn within(limit: usize, factors: &[usize]) -> bool {
    factors.iter().try_fold(1usize, |acc, &f| acc.checked_mul(f)).is_some_and(|n| n <= limit)
}

/// Parses `text` as a BERT-family config and checks it against `case`'s weights; when it passes,
/// what it implies fits the file and the folder loads or fails with a typed error.
fn check_bert(case: &Case, text: &str) {
    let path = case.dir.join("config.json");
    let file = case.dir.join("model.safetensors").display().to_string();
    let Ok(hf) = parse_json_config::<HfEncoderConfig>(&path, text) else { return };
    let Ok((config, _)) = post_norm_config(&path, &hf, &case.header, &file) else { return };
    let (h, total) = (config.hidden_size, case.total);
    assert!(within(total, &[config.vocab_size, h]), "vocab {} x {h}", config.vocab_size);
    assert!(within(total, &[config.num_hidden_layers, h, h]));
    assert!(within(total, &[config.num_hidden_layers, config.intermediate_size, h]));
    assert!(within(total, &[config.max_position_embeddings, h]));
    load(&case.dir, text);
}

/// As [`check_bert`], for DeBERTa-v2.
fn check_deberta(case: &Case, text: &str) {
    let path = case.dir.join("config.json");
    let file = case.dir.join("model.safetensors").display().to_string();
    let Ok(config) = parse_json_config::<DebertaV2Config>(&path, text) else { return };
    if config.check(&path).is_err() {
        return;
    }
    if checked_key_prefix(&path, &config, &case.header, &file).is_err() {
        return;
    }
    let (h, total) = (config.hidden_size, case.total);
    assert!(within(total, &[config.vocab_size, h]));
    assert!(within(total, &[config.num_hidden_layers, h, h]));
    assert!(within(total, &[config.num_hidden_layers, config.intermediate_size, h]));
    if config.relative_attention {
        assert!(within(total, &[2, config.att_span(), h]));
    }
    load(&case.dir, text);
}

/// The folder with `text` as its config loads, or fails with a typed error.
fn load(dir: &Path, text: &str) {
    std::fs::write(dir.join("config.json"), text).expect("write");
    let _ = load_encoder::<B>(dir, &Default::default());
}

fn edited(base: &Value, fields: &[(usize, Value)], names: &[&str]) -> String {
    let mut config = base.clone();
    for (field, value) in fields {
        config[names[*field]] = value.clone();
    }
    config.to_string()
}

thread_local! {
    static BERT: Case = case("encoders", "bert", "bert");
    static ROBERTA: Case = case("encoders", "roberta", "roberta");
    static DEBERTA: Case = case("deberta", "v3", "deberta");
    static DEBERTA_V2: Case = case("deberta", "v2", "deberta-v2");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn bert_config_text_never_panics(text in ".{0,200}") {
        BERT.with(|case| check_bert(case, &text));
    }

    #[test]
    fn bert_config_hostile_fields_never_panic(
        roberta in any::<bool>(),
        fields in prop::collection::vec((0..BERT_FIELDS.len(), hostile_value()), 1..3),
    ) {
        let run = |case: &Case| check_bert(case, &edited(&case.config, &fields, &BERT_FIELDS));
        if roberta { ROBERTA.with(run) } else { BERT.with(run) }
    }

    #[test]
    fn deberta_config_text_never_panics(text in ".{0,200}") {
        DEBERTA.with(|case| check_deberta(case, &text));
    }

    #[test]
    fn deberta_config_hostile_fields_never_panic(
        v2 in any::<bool>(),
        fields in prop::collection::vec((0..DEBERTA_FIELDS.len(), hostile_value()), 1..3),
    ) {
        let run = |case: &Case| check_deberta(case, &edited(&case.config, &fields, &DEBERTA_FIELDS));
        if v2 { DEBERTA_V2.with(run) } else { DEBERTA.with(run) }
    }
}
