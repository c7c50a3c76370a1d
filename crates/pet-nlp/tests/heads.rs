//! Head parity with transformers' task models on the tiny BERT checkpoint: the encoder and the
//! `classifier.*` layer of a `BertForSequenceClassification` / `BertForTokenClassification`
//! folder load into pet's backbone and heads and reproduce the task model's logits.

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor};
use pet_core::blocks::EncoderInput;
use pet_core::safetensors_io::read_tensor_file;
use pet_core::testing::TestInner as B;
use pet_core::testing::conformance::max_abs_diff;
use pet_core::{Backbone, NoDelta};
use pet_nlp::heads::{ClassificationHeadConfig, TokenClassificationHeadConfig};
use pet_nlp::{load_encoder, load_post_norm};

/// float32, kernels in another order than PyTorch's.
const TOLERANCE: f64 = 2e-5;

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/encoders").join(name)
}

fn input() -> EncoderInput<B> {
    let expected = read_tensor_file(&case("bert/expected.safetensors")).expect("inputs").tensors;
    let ints = |k: &str| {
        Tensor::<B, 2, Int>::from_data(expected[k].clone().convert::<i64>(), &Default::default())
    };
    EncoderInput {
        input_ids: ints("input_ids"),
        attention_mask: Tensor::from_data(expected["attention_mask"].clone(), &Default::default()),
        token_type_ids: Some(ints("token_type_ids")),
    }
}

fn logits(name: &str) -> burn::tensor::TensorData {
    read_tensor_file(&case(name).join("expected.safetensors")).expect("expected").tensors["logits"]
        .clone()
}

#[test]
fn sequence_classification_reproduces_bert_for_sequence_classification() {
    let device = Default::default();
    let (backbone, folder, _) = load_encoder::<B>(&case("bert_task"), &device).expect("folder");
    let head =
        folder.load_head(ClassificationHeadConfig::new(16, 3).init::<B>(&device)).expect("head");
    let ours = head.forward(backbone.forward_with(input(), &NoDelta));
    let diff = max_abs_diff(ours, Tensor::from_data(logits("bert_task"), &device));
    assert!(diff < TOLERANCE, "logits differ by {diff}");
}

#[test]
fn token_classification_reproduces_bert_for_token_classification() {
    let device = Default::default();
    let (backbone, folder, _) = load_post_norm::<B>(&case("bert_tagger"), &device).expect("folder");
    assert!(backbone.pooler.is_none(), "token classification models have no pooler");
    let head = folder
        .load_head(TokenClassificationHeadConfig::new(16, 5).init::<B>(&device))
        .expect("head");
    let encoded = backbone.forward_with(input(), &NoDelta);
    let [batch, seq, _] = encoded.hidden.dims();
    // Every token as its own word: the head's scores at all positions.
    let positions =
        Tensor::<B, 1, Int>::arange(0..seq as i64, &device).unsqueeze::<2>().repeat_dim(0, batch);
    let ours = head.emissions(encoded, positions);
    let diff = max_abs_diff(ours, Tensor::from_data(logits("bert_tagger"), &device));
    assert!(diff < TOLERANCE, "logits differ by {diff}");
}

#[test]
fn a_bare_encoder_has_no_head_to_load() {
    let device = Default::default();
    let (_, folder, _) = load_encoder::<B>(&case("bert"), &device).expect("folder");
    let err = folder
        .load_head(ClassificationHeadConfig::new(16, 3).init::<B>(&device))
        .expect_err("bare");
    assert!(err.to_string().contains("classifier.weight"), "{err}");
}

#[test]
fn qa_head_reproduces_bert_for_question_answering() {
    let device = Default::default();
    let (backbone, folder, _) = load_encoder::<B>(&case("bert_qa"), &device).expect("folder");
    let head =
        folder.load_head(pet_nlp::heads::QaHeadConfig::new(16).init::<B>(&device)).expect("head");
    let (start, end) = head.forward(backbone.forward_with(input(), &NoDelta));
    // transformers' start and end logits, stacked on the last axis.
    let ours = Tensor::stack::<3>(vec![start, end], 2);
    let diff = max_abs_diff(ours, Tensor::from_data(logits("bert_qa"), &device));
    assert!(diff < TOLERANCE, "logits differ by {diff}");
}
