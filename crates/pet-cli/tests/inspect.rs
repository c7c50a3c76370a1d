//! `pet inspect` on a delta checkpoint and on a PEFT adapter folder.

use std::path::Path;

use pet_core::checkpoint::DeltaCheckpoint;
use pet_core::delta::lora::LoraConfig;
use pet_core::testing::conformance::Tuned;
use pet_core::testing::{TestBackend as B, TinyEncoderConfig};
use pet_core::{Backbone, Trainability};

#[test]
fn inspect_reports_method_backbone_and_trainable_share() {
    let _serial = pet_core::testing::serial();
    let device = Default::default();
    let backbone = Trainability::Frozen.apply(TinyEncoderConfig::tiny().init::<B>(&device));
    let delta = LoraConfig::new(2).init(&backbone, &device).expect("lora");
    let identity = backbone.identity();
    let model = Tuned { backbone, delta, backend: Default::default() };
    let checkpoint = DeltaCheckpoint::capture::<B, _>(
        &model,
        &|e| e.trainable,
        serde_json::json!({"method": "lora", "r": 2}),
        identity,
    );
    let path = std::env::temp_dir().join(format!("pet-inspect-{}.safetensors", std::process::id()));
    checkpoint.save(&path).expect("save");
    let text = pet_cli::inspect::describe(&path).expect("describe");
    assert!(text.contains("\"method\":\"lora\""), "{text}");
    assert!(text.contains("tiny-encoder"), "{text}");
    // 2 layers x (query + value) x r * (16 + 16) = 256 trainable.
    assert!(text.contains("256 stored; 256 trainable of"), "{text}");
    assert!(text.contains("delta.sites.0.lora_a.weight"), "{text}");
}

#[test]
fn inspect_reads_a_peft_adapter_folder() {
    let folder =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pet-core/tests/parity/peft_tiny/prefix");
    let text = pet_cli::inspect::describe(&folder).expect("describe");
    assert!(text.contains("PREFIX_TUNING") && text.contains("192 in 1 tensors"), "{text}");
}

#[test]
fn inspect_shows_a_peft_task_adapters_task_and_head() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pet-nlp/tests/parity/encoders/bert_peft_seq_cls");
    let text = pet_cli::inspect::describe(&folder).expect("describe");
    // LoRA: 2 layers x (query + value) x r 2 x (16 + 16) = 256; head: 3 x 16 + 3 = 51.
    assert!(text.contains("SEQ_CLS") && text.contains("256 in 8 tensors"), "{text}");
    assert!(text.contains("task head      51 in classifier.bias, classifier.weight"), "{text}");
}

#[test]
fn inspect_of_a_non_checkpoint_names_the_file() {
    let path =
        std::env::temp_dir().join(format!("pet-inspect-bad-{}.safetensors", std::process::id()));
    std::fs::write(&path, b"garbage").expect("write");
    let err = format!("{:#}", pet_cli::inspect::describe(&path).expect_err("not a checkpoint"));
    assert!(err.contains(&path.display().to_string()), "{err}");
}
