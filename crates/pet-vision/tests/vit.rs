//! Parity of the ViT backbone with transformers 4.57.6 on tiny random checkpoints (fixture:
//! `tests/parity/vit/generate.py`), loaded from their folders through [`load_vit`]: hidden
//! states, pooler output and the gradient of every parameter, with and without `qkv_bias`, one
//! channel and an odd patch size, another `layer_norm_eps` and activation; the encoder of a
//! `ViTForImageClassification` checkpoint; errors that name the file and key; VPT-shallow and
//! VPT-deep against a reference written over transformers' modules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::TensorData;
use pet_core::PromptSlots;
use pet_core::delta::deep_prompt::DeepPromptConfig;
use pet_core::delta::prompt::PromptTuningConfig;
use pet_core::testing::TestBackend as B;
use pet_core::testing::conformance::assert_close;
use pet_core::testing::parity::{
    GRAD_RELATIVE_TOLERANCE, HIDDEN_TOLERANCE, check_gradients, recorded,
};
use pet_core::{Backbone, NoDelta, PetError};
use pet_vision::VisionError;
use pet_vision::vit::{ViT, ViTInput, ViTKeys, load_vit};

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/vit").join(name)
}

fn expected(name: &str) -> BTreeMap<String, TensorData> {
    pet_core::safetensors_io::read_tensor_file(&case(name).join("expected.safetensors"))
        .expect("expected fixture")
        .tensors
}

fn load(name: &str) -> ViT<B> {
    load_vit::<B>(&case(name), &Default::default()).expect("folder loads").0
}

/// Hidden states, the pooler output when the model has one, and every gradient.
fn check_backbone(name: &str) {
    let _serial = pet_core::testing::serial();
    let model = load(name);
    let expected = expected(name);
    let input = ViTInput { pixel_values: recorded(&expected["pixel_values"]) };
    let out = model.forward_with(input, &NoDelta);
    let reference = recorded::<B, 3>(&expected["last_hidden_state"]);
    assert_close("last_hidden_state", out.hidden.clone(), reference, HIDDEN_TOLERANCE);
    let mut loss = (out.hidden * recorded::<B, 3>(&expected["probe"])).sum();
    match (out.pooled, expected.get("pooler_output")) {
        (Some(pooled), Some(reference)) => {
            let reference = recorded::<B, 2>(reference);
            assert_close("pooler_output", pooled.clone(), reference, HIDDEN_TOLERANCE);
            loss = loss + pooled.sum();
        }
        (None, None) => {}
        (pooled, reference) => panic!(
            "{name}: pooler {} here, {} in the reference",
            pooled.is_some(),
            reference.is_some()
        ),
    }
    check_gradients(name, &model, loss, &expected, &ViTKeys);
}

#[test]
fn vit_matches_transformers_forward_and_gradients() {
    check_backbone("vit");
}

#[test]
fn vit_without_qkv_bias_and_with_gelu_new_matches_transformers() {
    check_backbone("vit_no_qkv_bias");
}

#[test]
fn a_one_channel_vit_with_odd_patches_and_no_pooler_matches_transformers() {
    check_backbone("vit_gray");
}

#[test]
fn a_classifier_checkpoint_loads_its_encoder_and_leaves_the_head() {
    let (model, folder, report) =
        load_vit::<B>(&case("vit_cls"), &Default::default()).expect("task folder");
    assert_eq!(folder.key_prefix, "vit.");
    assert_eq!(
        report.ignored,
        vec!["classifier.bias".to_string(), "classifier.weight".to_string()]
    );
    assert!(model.pooler.is_none(), "ViTForImageClassification's encoder has no pooler");
    assert_eq!(model.identity().weights_sha256.as_deref(), Some(folder.weights_sha256.as_str()));
}

/// A copy of a case's files in a fresh folder, `edit` applied to its config.
fn edited_copy(name: &str, edit: impl Fn(&mut serde_json::Value)) -> pet_core::testing::TempDir {
    let dir = pet_core::testing::TempDir::new(&format!("vit-{name}"));
    std::fs::copy(case(name).join("model.safetensors"), dir.path().join("model.safetensors"))
        .expect("copy weights");
    let text = std::fs::read_to_string(case(name).join("config.json")).expect("config");
    let mut config: serde_json::Value = serde_json::from_str(&text).expect("json");
    edit(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("write config");
    dir
}

#[test]
fn a_config_that_does_not_fit_the_weights_names_the_field_and_the_key() {
    for (field, value, named) in [
        ("patch_size", 2, "patch_size"),
        ("image_size", 12, "image_size"),
        ("num_channels", 1, "num_channels"),
    ] {
        let dir = edited_copy("vit", |c| c[field] = value.into());
        let err = load_vit::<B>(dir.path(), &Default::default()).expect_err(field);
        let text = err.to_string();
        assert!(matches!(err, VisionError::Config { .. }), "{err:?}");
        assert!(text.contains("config.json") && text.contains(&format!("`{named}`")), "{text}");
        assert!(text.contains("model.safetensors"), "{text}");
    }
    let dir = edited_copy("vit", |c| c["qkv_bias"] = false.into());
    let err = load_vit::<B>(dir.path(), &Default::default()).expect_err("biases left over");
    assert!(matches!(&err, VisionError::Core(PetError::UnexpectedWeights { .. })), "{err:?}");
    assert!(err.to_string().contains("attention.attention.query.bias"), "{err}");
}

/// VPT-shallow or VPT-deep with the recorded prompts against the reference written over
/// transformers' modules: every position's hidden state (prompt slots after `[CLS]`), the
/// pooler, and the gradient of every layer's prompt.
fn check_vpt(name: &str, layers: usize) {
    let _serial = pet_core::testing::serial();
    let model = load("vit");
    let expected = expected(name);
    let prompts = recorded::<B, 3>(&expected["prompts"]);
    let [count, tokens, hidden] = prompts.dims();
    assert_eq!(count, layers);
    let config = DeepPromptConfig {
        prompt: PromptTuningConfig::new(tokens, hidden),
        num_layers: layers,
        prompt_dropout: 0.0,
    };
    let mut deep = config.init::<B>(&Default::default()).expect("prompts");
    for (index, prompt) in deep.prompts.iter_mut().enumerate() {
        let recorded = prompts.clone().narrow(0, index, 1).reshape([tokens, hidden]);
        prompt.embedding = Param::from_tensor(recorded);
    }
    let input = ViTInput { pixel_values: recorded(&expected["pixel_values"]) };
    let out = model.forward_with(input, &deep);
    assert_eq!(out.prompt, PromptSlots { start: 1, len: tokens });
    let reference = recorded::<B, 3>(&expected["last_hidden_state"]);
    assert_close("last_hidden_state", out.hidden.clone(), reference, HIDDEN_TOLERANCE);
    let pooled = out.pooled.expect("a pooler");
    let reference = recorded::<B, 2>(&expected["pooler_output"]);
    assert_close("pooler_output", pooled.clone(), reference, HIDDEN_TOLERANCE);
    let loss = (out.hidden * recorded::<B, 3>(&expected["probe"])).sum() + pooled.sum();
    let grads = loss.backward();
    let theirs = recorded::<B, 3>(&expected["grad.prompts"]);
    for (index, prompt) in deep.prompts.iter().enumerate() {
        let ours = prompt.embedding.val().grad(&grads).expect("a prompt gradient");
        let theirs = theirs.clone().narrow(0, index, 1).reshape([tokens, hidden]).inner();
        assert_close(&format!("prompt {index} gradient"), ours, theirs, GRAD_RELATIVE_TOLERANCE);
    }
}

#[test]
fn vpt_shallow_places_its_prompt_after_cls_as_the_paper_does() {
    check_vpt("vpt_shallow", 1);
}

#[test]
fn vpt_deep_replaces_each_layers_slots_with_its_own_prompt() {
    check_vpt("vpt_deep", 2);
}
