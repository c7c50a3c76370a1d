//! Hostile model folders, written by the tests into temp dirs: a config that implies tensors
//! larger than or different from the weights file, values no encoder can use, non-finite
//! weights. Each is a typed error naming the config file and field (or the weights file and
//! key), raised before a model of the config's sizes is allocated.

use std::path::Path;

use pet_core::PetError;
use pet_core::safetensors_io::{read_tensor_file, write_tensor_file};
use pet_core::testing::TestInner as B;
use pet_nlp::{NlpError, load_encoder};
use serde_json::{Value, json};

use crate::fixtures;

/// A copy of the fixture folder `family/name` with `edit` applied to its `config.json`.
fn edited(family: &str, name: &str, to: &str, edit: impl FnOnce(&mut Value)) -> std::path::PathBuf {
    let dir = fixtures::copy_case(family, name, to);
    let path = dir.join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    edit(&mut config);
    std::fs::write(&path, config.to_string()).expect("write");
    dir
}

/// The field a load of `dir` refuses, after checking that the error names `config.json`.
fn refused_field(dir: &Path) -> (String, String) {
    match load_encoder::<B>(dir, &Default::default()) {
        Err(NlpError::Config { path, field, reason }) => {
            assert_eq!(path, dir.join("config.json"));
            (field, reason)
        }
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(_) => panic!("expected a config error, the folder loaded"),
    }
}

const CASES: [(&str, &str); 3] = [("encoders", "bert"), ("encoders", "roberta"), ("deberta", "v3")];

#[test]
fn a_config_larger_than_its_weights_is_refused_before_allocating() {
    let _serial = pet_core::testing::serial();
    for (family, name) in CASES {
        for (field, value) in [
            ("hidden_size", json!(64)),
            ("hidden_size", json!(100_000)),
            ("vocab_size", json!(2_000_000_000u64)),
            ("num_hidden_layers", json!(1000)),
            ("num_hidden_layers", json!(3)),
            ("intermediate_size", json!(20)),
            ("intermediate_size", json!(1u64 << 40)),
            ("max_position_embeddings", json!(1u64 << 40)),
        ] {
            if family == "deberta" && field == "max_position_embeddings" {
                continue; // v3 has no absolute positions; the span comes from position_buckets
            }
            let dir = edited(family, name, &format!("big-{field}"), |c| {
                c[field] = value.clone();
                if field == "hidden_size" {
                    c["pooler_hidden_size"] = value.clone();
                }
            });
            let (found, reason) = refused_field(&dir);
            assert_eq!(found, field, "{name} {field}={value}: {reason}");
            assert!(reason.contains("model.safetensors"), "the weights file is named: {reason}");
        }
    }
    let dir = edited("deberta", "v3", "big-buckets", |c| c["position_buckets"] = json!(1u64 << 40));
    assert_eq!(refused_field(&dir).0, "position_buckets");
}

#[test]
fn config_values_no_encoder_can_use_are_named() {
    let _serial = pet_core::testing::serial();
    for (family, name) in CASES {
        for (field, value) in [
            ("hidden_dropout_prob", json!(2.0)),
            ("attention_probs_dropout_prob", json!(-0.5)),
            ("layer_norm_eps", json!(0.0)),
            ("layer_norm_eps", json!(-1e-12)),
            ("num_attention_heads", json!(0)),
            ("num_attention_heads", json!(3)),
            ("hidden_size", json!(0)),
            ("hidden_size", json!(-1)),
            ("vocab_size", json!(-5)),
            ("num_hidden_layers", json!(0)),
            ("num_hidden_layers", json!(1.5)),
            ("pad_token_id", json!(40)),
            ("hidden_dropout_prob", json!("0.1")),
        ] {
            let dir = edited(family, name, &format!("bad-{field}"), |c| c[field] = value.clone());
            let (found, reason) = refused_field(&dir);
            assert_eq!(found, field, "{name} {field}={value}: {reason}");
        }
    }
}

#[test]
fn non_finite_weights_are_refused_naming_the_file_and_key() {
    let _serial = pet_core::testing::serial();
    for (family, name) in CASES {
        let dir = fixtures::copy_case(family, name, "nan");
        let weights = dir.join("model.safetensors");
        let mut file = read_tensor_file(&weights).expect("read");
        let key = file.tensors.keys().find(|k| k.contains("layer.1.output.dense.weight")).cloned();
        let key = key.expect("a layer weight");
        let mut values = file.tensors[&key].to_vec::<f32>().expect("floats");
        values[5] = f32::NAN;
        let shape = file.tensors[&key].shape.clone();
        file.tensors.insert(key.clone(), burn::tensor::TensorData::new(values, shape));
        write_tensor_file(&weights, &file).expect("write");
        match load_encoder::<B>(&dir, &Default::default()) {
            Err(NlpError::Core(PetError::NonFinite { path, key: found, index })) => {
                assert_eq!((path, found, index), (weights.clone(), key, 5));
            }
            Err(other) => panic!("expected a non-finite error, got {other}"),
            Ok(_) => panic!("expected a non-finite error, the folder loaded"),
        }
    }
}
