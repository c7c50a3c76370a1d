//! Parity of the DeBERTa-v2 / v3 backbone with transformers 4.57.6 on tiny random checkpoints
//! (fixture: `tests/parity/deberta/generate.py`), loaded from their folders through
//! [`load_deberta`]: hidden states and every parameter's gradient (v2 style: absolute positions,
//! token types, clamped relative distances, separate position projections, convolution; v3
//! style: log buckets, shared keys, normed relative embeddings); the ContextPooler classification head
//! and token-classification logits of task checkpoints; PEFT 0.17.1 LoRA and prompt tuning; a
//! PEFT prefix-tuning file under P-Tuning v2's DeBERTa-v2 semantics (prefix keys with a zero
//! relative bias, the default policy); the two prefix relative-position policies; and the
//! conformance suite of the delta methods on the `tiny()` preset.

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};
use pet_core::delta::prefix::PrefixTuningConfig;
use pet_core::peft::PeftAdapter;
use pet_core::testing::TestBackend as B;
use pet_core::testing::conformance::{assert_close, max_abs_diff};
use pet_core::{AttentionPrefix, Backbone, Delta, NoDelta, PetError, PrefixPositions};
use pet_nlp::NlpError;
use pet_nlp::deberta::{
    DebertaV2Config, DebertaV2Encoder, PrefixRelativePosition, RelativePositions, load_deberta,
    relative_index,
};
use pet_nlp::heads::token_classification::TokenClassificationHeadConfig;

use crate::fixtures::{self, HIDDEN_TOLERANCE, check_close, check_gradients, input, tensor};

/// The fixture family of these tests (`tests/parity/deberta`).
const FAMILY: &str = "deberta";

fn load(name: &str) -> DebertaV2Encoder<B> {
    load_deberta::<B>(&fixtures::case(FAMILY, name), &Default::default()).expect("folder loads").0
}

/// Hidden states and every parameter's gradient against transformers.
fn check_backbone(name: &str) {
    let _serial = pet_core::testing::serial();
    let model = load(name);
    let expected = fixtures::expected(FAMILY, name);
    let hidden = model.forward_with(input(&expected), &NoDelta).hidden;
    let reference = tensor::<3>(&expected["last_hidden_state"]);
    check_close(name, "last_hidden_state", hidden.clone(), reference);
    let loss = (hidden * tensor::<3>(&expected["probe"])).sum();
    check_gradients(name, &model, loss, &expected);
}

#[test]
fn deberta_v2_matches_transformers_with_conv_absolute_positions_and_clamped_distances() {
    check_backbone("v2");
}

#[test]
fn deberta_v3_matches_transformers_with_log_buckets_and_shared_keys() {
    check_backbone("v3");
}

#[test]
fn a_task_checkpoint_loads_its_encoder_and_the_context_pooler_classifier() {
    let _serial = pet_core::testing::serial();
    let (model, folder, report) =
        load_deberta::<B>(&fixtures::case(FAMILY, "v3_seq_cls"), &Default::default())
            .expect("task folder");
    assert_eq!(folder.key_prefix, "deberta.");
    assert_eq!(
        report.ignored,
        ["classifier.bias", "classifier.weight", "pooler.dense.bias", "pooler.dense.weight"]
    );
    let inputs = fixtures::expected(FAMILY, "v3");
    let encoded = model.forward_with(input(&inputs), &NoDelta);
    assert_close(
        "last_hidden_state",
        encoded.hidden.clone(),
        tensor(&inputs["last_hidden_state"]),
        HIDDEN_TOLERANCE,
    );
    let head = folder
        .load_head(model.config.classification_head(3).init::<B>(&Default::default()))
        .expect("pooler and classifier");
    let logits = head.forward(encoded);
    let reference = tensor::<2>(&fixtures::expected(FAMILY, "v3_seq_cls")["logits"]);
    check_close("v3_seq_cls", "logits", logits, reference);
}

#[test]
fn token_classification_logits_match_transformers() {
    let _serial = pet_core::testing::serial();
    let (model, folder, _) =
        load_deberta::<B>(&fixtures::case(FAMILY, "v3_token_cls"), &Default::default())
            .expect("task folder");
    let hidden = model.forward_with(input(&fixtures::expected(FAMILY, "v3")), &NoDelta).hidden;
    let head = folder
        .load_head(
            TokenClassificationHeadConfig::new(16, 5)
                .with_dropout(0.0)
                .init::<B>(&Default::default()),
        )
        .expect("classifier");
    let logits = head.classifier.forward(hidden);
    let reference = tensor::<3>(&fixtures::expected(FAMILY, "v3_token_cls")["logits"]);
    check_close("v3_token_cls", "logits", logits, reference);
}

fn peft_hidden<D: Delta<B>>(model: &DebertaV2Encoder<B>, name: &str, delta: &D) {
    let hidden = model.forward_with(input(&fixtures::expected(FAMILY, "v3")), delta).hidden;
    let reference = tensor::<3>(&fixtures::expected(FAMILY, name)["last_hidden_state"]);
    check_close(name, "last_hidden_state", hidden, reference);
}

#[test]
fn peft_lora_on_query_key_value_proj_reproduces_peft_with_shared_position_projections() {
    let _serial = pet_core::testing::serial();
    let model = load("v3");
    let lora = PeftAdapter::read(&fixtures::case(FAMILY, "v3_lora"))
        .expect("adapter")
        .to_lora::<B>(&model.linear_sites(), &Default::default())
        .expect("lora");
    assert_eq!(lora.sites.len(), 2 * 3, "query_proj, key_proj, value_proj of 2 layers");
    peft_hidden(&model, "v3_lora", &lora);
}

#[test]
fn peft_prompt_tuning_reproduces_peft() {
    let _serial = pet_core::testing::serial();
    let model = load("v3");
    let prompt = PeftAdapter::read(&fixtures::case(FAMILY, "v3_prompt"))
        .expect("adapter")
        .to_prompt::<B>(model.shape(), &Default::default())
        .expect("prompt");
    let out = model.forward_with(input(&fixtures::expected(FAMILY, "v3")), &prompt);
    assert_eq!(
        (out.prompt.start, out.prompt.len, out.mask.dims()),
        (0, 2, [2, 10]),
        "prompt positions come first"
    );
    peft_hidden(&model, "v3_prompt", &prompt);
}

/// A PEFT prefix-tuning file on `base` under `policy`, against the fixture's `key`.
fn check_prefix(base: &str, policy: PrefixRelativePosition, key: &str) -> Tensor<B, 3> {
    let model = load(base).with_prefix_relative_position(policy);
    let name = format!("{base}_prefix");
    let prefix = PeftAdapter::read(&fixtures::case(FAMILY, &name))
        .expect("adapter")
        .to_prefix::<B>(model.shape(), &Default::default())
        .expect("prefix");
    let hidden = model.forward_with(input(&fixtures::expected(FAMILY, base)), &prefix).hidden;
    let reference = tensor::<3>(&fixtures::expected(FAMILY, &name)[key]);
    check_close(&name, key, hidden.clone(), reference);
    hidden
}

#[test]
fn peft_prefix_with_zero_bias_reproduces_the_p_tuning_v2_reference() {
    let _serial = pet_core::testing::serial();
    for base in ["v3", "v2"] {
        check_prefix(base, PrefixRelativePosition::ZeroBias, "last_hidden_state");
    }
}

#[test]
fn before_first_token_prefix_matches_its_torch_reference_and_differs_from_zero_bias() {
    let _serial = pet_core::testing::serial();
    for base in ["v3", "v2"] {
        let key = "before_first_token.last_hidden_state";
        let hidden = check_prefix(base, PrefixRelativePosition::BeforeFirstToken, key);
        let zero_bias = tensor::<3>(
            &fixtures::expected(FAMILY, &format!("{base}_prefix"))["last_hidden_state"],
        );
        let apart = max_abs_diff(hidden, zero_bias);
        assert!(apart > 1e-3, "{base}: the policies differ by {apart} only");
    }
}

#[test]
fn absolute_positions_under_a_prefix_follow_the_prefix_positions_option() {
    let _serial = pet_core::testing::serial();
    let model = load("v2");
    let prefix = PeftAdapter::read(&fixtures::case(FAMILY, "v2_prefix"))
        .expect("adapter")
        .to_prefix::<B>(model.shape(), &Default::default())
        .expect("prefix");
    let inputs = input(&fixtures::expected(FAMILY, "v2"));
    let offset = model.forward_with(inputs.clone(), &prefix).hidden;
    let reference = tensor::<3>(&fixtures::expected(FAMILY, "v2_prefix")["last_hidden_state"]);
    assert_close("offset (default)", offset.clone(), reference, HIDDEN_TOLERANCE);
    let from_zero =
        model.with_prefix_positions(PrefixPositions::FromZero).forward_with(inputs, &prefix).hidden;
    assert!(max_abs_diff(offset, from_zero) > 1e-3);
}

/// Layer 0's attention scores of the v3 model with a random one-position prefix, under `policy`.
///
/// Returns the scores `[1, heads, seq, 1 + seq]`, the scores without the prefix
/// `[1, heads, seq, seq]`, and the content scores of the prefix key `[1, heads, seq, 1]`.
fn layer0_scores(policy: PrefixRelativePosition) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
    let model = load("v3").with_prefix_relative_position(policy);
    let device = Default::default();
    let config = &model.config;
    let (heads, head_dim, seq) = (config.num_attention_heads, config.head_dim(), 5);
    let x = Tensor::<B, 3>::random(
        [1, seq, config.hidden_size],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let key = Tensor::<B, 4>::random(
        [1, heads, 1, head_dim],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let prefix = AttentionPrefix { key: key.clone(), value: key.zeros_like() };
    let table = model.encoder.rel_embeddings.as_ref().expect("relative attention");
    let norm = model.encoder.layer_norm.as_ref().expect("norm_rel_ebd");
    let embeddings = norm.forward(table.weight.val());
    let span = config.att_span() as i64;
    let positions: Vec<i64> = (0..seq as i64).collect();
    let index = |keys: &[i64]| {
        let index =
            relative_index(&positions, keys, config.position_buckets, config.max_relative(), span);
        Tensor::<B, 2, Int>::from_data(TensorData::new(index, [seq, keys.len()]), &device)
    };
    let (keys, zero_columns) = match policy {
        PrefixRelativePosition::ZeroBias => (positions.clone(), 1),
        PrefixRelativePosition::BeforeFirstToken => ([vec![-1], positions.clone()].concat(), 0),
    };
    let with =
        RelativePositions { embeddings: embeddings.clone(), index: index(&keys), zero_columns };
    let without = RelativePositions { embeddings, index: index(&positions), zero_columns: 0 };
    let attention = &model.encoder.layer[0].attention.self_attention;
    let (scores, _) = attention.scores(x.clone(), Some(&with), Some(&prefix), 0, &NoDelta);
    let (plain, _) = attention.scores(x.clone(), Some(&without), None, 0, &NoDelta);
    // q . k_prefix / sqrt(head_dim * 3)
    let q = attention.query_proj.forward(x).reshape([1, seq, heads, head_dim]).swap_dims(1, 2);
    let content = q.matmul(key.swap_dims(2, 3)) / ((head_dim * 3) as f64).sqrt();
    (scores, plain, content)
}

#[test]
fn zero_bias_prefix_keys_take_content_scores_only() {
    let _serial = pet_core::testing::serial();
    let (scores, plain, content) = layer0_scores(PrefixRelativePosition::ZeroBias);
    let [_, heads, seq, _] = plain.dims();
    let prefix_scores = scores.clone().slice([0..1, 0..heads, 0..seq, 0..1]);
    assert!(max_abs_diff(prefix_scores, content) < 1e-5, "prefix column = q . k / scale");
    let token_scores = scores.slice([0..1, 0..heads, 0..seq, 1..1 + seq]);
    assert!(max_abs_diff(token_scores, plain) < 1e-5, "token columns as without the prefix");
}

#[test]
fn before_first_token_prefix_keys_take_relative_terms_too() {
    let _serial = pet_core::testing::serial();
    let (scores, plain, content) = layer0_scores(PrefixRelativePosition::BeforeFirstToken);
    let [_, heads, seq, _] = plain.dims();
    let prefix_scores = scores.clone().slice([0..1, 0..heads, 0..seq, 0..1]);
    assert!(
        max_abs_diff(prefix_scores, content) > 1e-3,
        "the prefix key at -1 has c2p / p2c terms"
    );
    let token_scores = scores.slice([0..1, 0..heads, 0..seq, 1..1 + seq]);
    assert!(max_abs_diff(token_scores, plain) < 1e-5, "token columns keep their positions");
}

#[test]
fn the_prefix_policies_differ_through_the_whole_encoder_and_zero_bias_is_the_default() {
    let _serial = pet_core::testing::serial();
    let device = Default::default();
    let model = load("v3");
    assert_eq!(model.prefix_relative_position, PrefixRelativePosition::ZeroBias);
    let prefix =
        PrefixTuningConfig::for_backbone(model.shape(), 3).init::<B>(&device).expect("prefix");
    let inputs = input(&fixtures::expected(FAMILY, "v3"));
    let out = model.forward_with(inputs.clone(), &prefix);
    assert_eq!((out.prompt.len, out.hidden.dims()), (0, [2, 8, 16]), "prefixes add no position");
    let zero = out.hidden;
    let before = model
        .with_prefix_relative_position(PrefixRelativePosition::BeforeFirstToken)
        .forward_with(inputs.clone(), &prefix)
        .hidden;
    assert!(max_abs_diff(zero.clone(), before) > 1e-4, "the policies differ");
    // Without relative attention the policies have nothing to act on.
    let config = DebertaV2Config {
        relative_attention: false,
        pos_att_type: Vec::new(),
        ..DebertaV2Config::tiny()
    };
    let plain = config.init::<B>(&device);
    let zero = plain.forward_with(inputs.clone(), &prefix).hidden;
    let before = plain
        .with_prefix_relative_position(PrefixRelativePosition::BeforeFirstToken)
        .forward_with(inputs, &prefix)
        .hidden;
    assert!(max_abs_diff(zero, before) < 1e-6);
}

fn edit_config(dir: &Path, from: &str, to: &str) {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(from), "{from} in {text}");
    std::fs::write(&path, text.replace(from, to)).expect("write");
}

#[test]
fn bad_folders_name_the_file_and_the_field_or_key() {
    let _serial = pet_core::testing::serial();
    let dir = fixtures::copy_case(FAMILY, "v3", "embedding-size");
    edit_config(&dir, "\"hidden_size\": 16,", "\"hidden_size\": 16, \"embedding_size\": 8,");
    match load_deberta::<B>(&dir, &Default::default()) {
        Err(NlpError::Config { path, field, .. }) => {
            assert_eq!(path, dir.join("config.json"));
            assert_eq!(field, "embedding_size");
        }
        other => panic!("expected a config error, got {:?}", other.map(|_| ())),
    }

    let dir = fixtures::copy_case(FAMILY, "v3", "separate-keys");
    edit_config(&dir, "\"share_att_key\": true", "\"share_att_key\": false");
    // Checked against the file's header before the model is built: the field that asks for
    // the absent projection, and the file and key.
    match load_deberta::<B>(&dir, &Default::default()) {
        Err(NlpError::Config { field, reason, .. }) => {
            assert_eq!(field, "share_att_key");
            assert!(
                reason.contains("model.safetensors")
                    && reason.contains("encoder.layer.0.attention.self.pos_key_proj.weight"),
                "{reason}"
            );
        }
        other => panic!("expected a config error, got {:?}", other.map(|_| ())),
    }

    let dir = fixtures::copy_case(FAMILY, "v2", "no-conv");
    edit_config(&dir, "\"conv_kernel_size\": 3", "\"conv_kernel_size\": 0");
    match load_deberta::<B>(&dir, &Default::default()) {
        Err(NlpError::Core(PetError::UnexpectedWeights { keys, .. })) => {
            assert!(keys.contains(&"encoder.conv.conv.weight".into()), "{keys:?}")
        }
        other => panic!("expected unexpected weights, got {:?}", other.map(|_| ())),
    }
}

/// The standard conformance cases of the delta methods on the DeBERTa `tiny()` preset (v3 style:
/// shared keys, so LoRA on `query_proj` / `key_proj` also acts on the relative-position
/// projections).
mod conformance {
    use pet_core::testing::TestBackend;
    use pet_core::testing::conformance::conformance_input;
    use pet_nlp::deberta::{DebertaV2Config, DebertaV2Encoder};

    type Device = burn::tensor::Device<TestBackend>;

    pet_core::backbone_conformance!(
        backbone: |d: &Device| DebertaV2Config::tiny().init(d) => DebertaV2Encoder<TestBackend>,
        input: |d: &Device| conformance_input(1, d),
        lora_targets: ["query_proj", "value_proj"],
        intermediate_size: 24,
    );
}

#[test]
fn load_encoder_routes_a_deberta_v2_folder_to_the_deberta_backbone() {
    let _serial = pet_core::testing::serial();
    let (backbone, folder, _) =
        pet_nlp::load_encoder::<B>(&fixtures::case(FAMILY, "v3"), &Default::default())
            .expect("folder");
    assert!(matches!(backbone, pet_nlp::NlpBackbone::Deberta(_)));
    assert_eq!(folder.model_type, "deberta-v2");
    assert_eq!(backbone.identity().architecture, "deberta-v2");
    let expected = fixtures::expected(FAMILY, "v3");
    let hidden = backbone.forward_with(input(&expected), &NoDelta).hidden;
    check_close("v3", "last_hidden_state", hidden, tensor::<3>(&expected["last_hidden_state"]));
}
