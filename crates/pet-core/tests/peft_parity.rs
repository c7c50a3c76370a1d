//! Parity with PEFT 0.17.1 + transformers 4.57.6 on a tiny random `BertModel`
//! (fixture: `tests/parity/peft_tiny/generate.py`): the tiny encoder loaded with the model's
//! weights reproduces its hidden states, and PEFT adapters imported through
//! [`PeftAdapter`] reproduce PEFT's hidden states and gradients. Also round trips and errors of
//! the adapter format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Int, Tensor, TensorData};
use pet_core::blocks::hf_keys::load_hf_state;
use pet_core::delta::prefix::{PrefixMlp, PrefixTuning, PrefixTuningConfig};
use pet_core::params::write_params;
use pet_core::peft::PeftAdapter;
use pet_core::safetensors_io::read_tensor_file;
use pet_core::testing::conformance::{assert_close, max_abs_diff};
use pet_core::testing::{TestBackend as B, TinyEncoder, TinyEncoderConfig, TinyInput};
use pet_core::{Backbone, Delta, LinearKind, NoDelta, PetError};

/// Forward outputs: float32 kernels in a different order than PyTorch's.
const HIDDEN_TOLERANCE: f64 = 2e-5;
/// Gradients, relative to the largest magnitude of the reference gradient.
const GRAD_RELATIVE_TOLERANCE: f64 = 1e-4;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/peft_tiny").join(rel)
}

struct Fixture {
    /// Held for the test: the fixture's modules draw from the backend's generator.
    _serial: std::sync::MutexGuard<'static, ()>,
    backbone: TinyEncoder<B>,
    input_ids: TensorData,
    attention_mask: TensorData,
    probe: Tensor<B, 3>,
    expected_base: Tensor<B, 3>,
    expected_pooled: Tensor<B, 2>,
}

fn device() -> burn::tensor::Device<B> {
    Default::default()
}

fn load_fixture() -> Fixture {
    let serial = pet_core::testing::serial();
    let device = device();
    let weights = fixture("model/model.safetensors");
    let state = read_tensor_file(&weights).expect("model fixture").tensors;
    let backbone = TinyEncoderConfig::tiny().init::<B>(&device);
    // Strict: every BertModel key is used and every parameter is loaded.
    let (backbone, report) =
        load_hf_state(backbone, &state, &weights.display().to_string(), "", &|_| false)
            .expect("BertModel weights load onto the tiny encoder");
    assert_eq!(report.loaded, state.len());
    let file = read_tensor_file(&fixture("inputs.safetensors")).expect("inputs fixture");
    Fixture {
        _serial: serial,
        backbone,
        input_ids: file.tensors["input_ids"].clone(),
        attention_mask: file.tensors["attention_mask"].clone(),
        probe: Tensor::from_data(file.tensors["probe"].clone(), &device),
        expected_base: Tensor::from_data(file.tensors["last_hidden_state"].clone(), &device),
        expected_pooled: Tensor::from_data(file.tensors["pooler_output"].clone(), &device),
    }
}

impl Fixture {
    fn input(&self) -> TinyInput<B> {
        TinyInput::new(
            Tensor::<B, 2, Int>::from_data(self.input_ids.clone().convert::<i64>(), &device()),
            Tensor::from_data(self.attention_mask.clone(), &device()),
        )
    }

    /// Hidden states with `delta`, and the loss PEFT's generator differentiated.
    fn run<D: Delta<B>>(&self, delta: &D) -> (Tensor<B, 3>, Tensor<B, 1>) {
        let hidden = self.backbone.forward_with(self.input(), delta).hidden;
        let seq = hidden.dims()[1];
        let loss = (hidden.clone() * self.probe.clone().narrow(1, 0, seq)).sum();
        (hidden, loss)
    }
}

fn expected(case: &str) -> BTreeMap<String, TensorData> {
    read_tensor_file(&fixture(&format!("{case}/expected.safetensors")))
        .expect("expected fixture")
        .tensors
}

fn reference<const D: usize>(tensors: &BTreeMap<String, TensorData>, key: &str) -> Tensor<B, D> {
    let data = tensors.get(key).unwrap_or_else(|| panic!("fixture has no `{key}`"));
    Tensor::from_data(data.clone(), &device())
}

fn assert_grad<const D: usize>(
    what: &str,
    param: &Param<Tensor<B, D>>,
    grads: &<B as burn::tensor::backend::AutodiffBackend>::Gradients,
    theirs: Tensor<B, D>,
) {
    let ours = param.val().grad(grads).unwrap_or_else(|| panic!("{what}: no gradient"));
    let ours = Tensor::<B, D>::from_data(ours.into_data(), &device());
    assert_close(what, ours, theirs, GRAD_RELATIVE_TOLERANCE);
}

#[test]
fn tiny_encoder_reproduces_bert_model_hidden_states_and_pooler() {
    let f = load_fixture();
    let out = f.backbone.forward_with(f.input(), &NoDelta);
    assert_close("last_hidden_state", out.hidden, f.expected_base.clone(), HIDDEN_TOLERANCE);
    let pooled = out.pooled.expect("BertModel has a pooler");
    assert_close("pooler_output", pooled, f.expected_pooled.clone(), HIDDEN_TOLERANCE);
}

#[test]
fn a_missing_or_unexpected_bert_key_is_named() {
    let _serial = pet_core::testing::serial();
    let path = fixture("model/model.safetensors");
    let mut state = read_tensor_file(&path).expect("model fixture").tensors;
    let key = "encoder.layer.1.output.LayerNorm.bias";
    let value = state.remove(key).expect("present");
    let fresh = || TinyEncoderConfig::tiny().init::<B>(&device());
    match load_hf_state(fresh(), &state, "model.safetensors", "", &|_| false) {
        Err(PetError::MissingWeights { file, keys }) => {
            assert_eq!((file.as_str(), keys), ("model.safetensors", vec![key.to_string()]))
        }
        other => panic!("expected MissingWeights, got {other:?}"),
    }
    state.insert(key.to_string(), value);
    state.insert("cls.predictions.bias".to_string(), TensorData::new(vec![0f32; 32], [32]));
    let err =
        load_hf_state(fresh(), &state, "model.safetensors", "", &|_| false).expect_err("extra");
    assert!(
        matches!(&err, PetError::UnexpectedWeights { keys, .. } if keys == &vec!["cls.predictions.bias".to_string()])
    );
    let (_, report) =
        load_hf_state(fresh(), &state, "model.safetensors", "", &|k| k.starts_with("cls."))
            .expect("allow-listed");
    assert_eq!(report.ignored, vec!["cls.predictions.bias".to_string()]);
}

#[test]
fn peft_lora_import_reproduces_hidden_states_and_gradients() {
    let f = load_fixture();
    let adapter = PeftAdapter::read(&fixture("lora")).expect("adapter");
    let sites = f.backbone.linear_sites();
    let lora = adapter.to_lora::<B>(&sites, &device()).expect("lora");
    assert_eq!(lora.sites.len(), 6, "query, value and intermediate.dense of 2 layers");
    assert!((lora.scaling - 2.0).abs() < 1e-12, "lora_alpha 8 / r 4");
    let expected = expected("lora");
    let (hidden, loss) = f.run(&lora);
    assert_close(
        "last_hidden_state",
        hidden,
        reference(&expected, "last_hidden_state"),
        HIDDEN_TOLERANCE,
    );
    let grads = loss.backward();
    for site in &lora.sites {
        let path = &sites.iter().find(|s| s.site == site.site).expect("site").path;
        let key = |part: &str| format!("grad.base_model.model.{path}.{part}.weight");
        // PEFT's [out, in] against Burn's [in, out].
        assert_grad(
            &key("lora_A"),
            &site.lora_a.weight,
            &grads,
            reference::<2>(&expected, &key("lora_A")).transpose(),
        );
        assert_grad(
            &key("lora_B"),
            &site.lora_b.weight,
            &grads,
            reference::<2>(&expected, &key("lora_B")).transpose(),
        );
    }
}

/// PEFT matches `target_modules = ["dense"]` against every module path ending in `dense`:
/// `attention.output.dense`, `intermediate.dense` and `output.dense` of each layer, and
/// BertModel's `pooler.dense`, which pet exposes as the pooler's linear site.
#[test]
fn peft_lora_on_dense_adapts_the_pooler_and_reproduces_peft() {
    let f = load_fixture();
    let adapter = PeftAdapter::read(&fixture("lora_dense")).expect("adapter");
    let sites = f.backbone.linear_sites();
    let lora = adapter.to_lora::<B>(&sites, &device()).expect("the pooler's LoRA loads");
    assert_eq!(lora.sites.len(), 2 * 5 + 1, "query, value and 3 dense per layer, and the pooler");
    let pooler = lora.sites.iter().find(|s| s.site.kind == LinearKind::Pooler).expect("pooler");
    let expected = expected("lora_dense");
    let out = f.backbone.forward_with(f.input(), &lora);
    let (hidden, pooled) = (out.hidden, out.pooled.expect("a pooler"));
    assert_close(
        "last_hidden_state",
        hidden.clone(),
        reference(&expected, "last_hidden_state"),
        HIDDEN_TOLERANCE,
    );
    assert_close(
        "pooler_output",
        pooled.clone(),
        reference(&expected, "pooler_output"),
        HIDDEN_TOLERANCE,
    );
    let seq = hidden.dims()[1];
    let pool_probe = f.probe.clone().narrow(1, 0, 1).squeeze_dim::<2>(1);
    let loss = (hidden * f.probe.clone().narrow(1, 0, seq)).sum() + (pooled * pool_probe).sum();
    let grads = loss.backward();
    let key = |part: &str| format!("grad.base_model.model.pooler.dense.{part}.weight");
    for (part, weight) in [("lora_A", &pooler.lora_a.weight), ("lora_B", &pooler.lora_b.weight)] {
        assert_grad(&key(part), weight, &grads, reference::<2>(&expected, &key(part)).transpose());
    }
    // Merged into the backbone, the pooler's update lands in `pooler.dense` too.
    let merged = lora.merge(f.backbone.clone());
    let pooled = merged.forward_with(f.input(), &NoDelta).pooled.expect("a pooler");
    assert_close(
        "merged pooler_output",
        pooled,
        reference(&expected, "pooler_output"),
        HIDDEN_TOLERANCE,
    );
}

#[test]
fn peft_lora_merged_reproduces_the_adapter() {
    let f = load_fixture();
    let adapter = PeftAdapter::read(&fixture("lora")).expect("adapter");
    let lora = adapter.to_lora::<B>(&f.backbone.linear_sites(), &device()).expect("lora");
    let merged = lora.merge(f.backbone.clone());
    let hidden = merged.forward_with(f.input(), &NoDelta).hidden;
    assert_close(
        "merged last_hidden_state",
        hidden,
        reference(&expected("lora"), "last_hidden_state"),
        HIDDEN_TOLERANCE,
    );
    let restored = lora.unmerge(merged);
    let hidden = restored.forward_with(f.input(), &NoDelta).hidden;
    assert_close("unmerged last_hidden_state", hidden, f.expected_base.clone(), HIDDEN_TOLERANCE);
}

#[test]
fn peft_prefix_import_reproduces_hidden_states_and_gradients_with_offset_positions() {
    let f = load_fixture();
    let adapter = PeftAdapter::read(&fixture("prefix")).expect("adapter");
    let prefix = adapter.to_prefix::<B>(f.backbone.shape(), &device()).expect("prefix");
    assert_eq!(prefix.len(), 3);
    let expected = expected("prefix");
    let (hidden, loss) = f.run(&prefix);
    assert_close(
        "last_hidden_state",
        hidden,
        reference(&expected, "last_hidden_state"),
        HIDDEN_TOLERANCE,
    );
    let grads = loss.backward();
    assert_grad(
        "prompt_encoder.embedding.weight",
        &prefix.embedding,
        &grads,
        reference(&expected, "grad.prompt_encoder.embedding.weight"),
    );
}

#[test]
fn prefix_positions_from_zero_departs_from_the_reference() {
    let f = load_fixture();
    let prefix = PeftAdapter::read(&fixture("prefix"))
        .expect("adapter")
        .to_prefix::<B>(f.backbone.shape(), &device())
        .expect("prefix");
    let config =
        TinyEncoderConfig::tiny().with_prefix_positions(pet_core::PrefixPositions::FromZero);
    let weights = pet_core::params::read_params::<B, _>(&f.backbone, &|_| true);
    let (from_zero, _) = write_params(config.init::<B>(&device()), &weights).expect("weights");
    let hidden = from_zero.forward_with(f.input(), &prefix).hidden;
    let diff = max_abs_diff(hidden, reference(&expected("prefix"), "last_hidden_state"));
    assert!(diff > 1e-3, "FromZero must number positions differently from PEFT (diff {diff})");
}

fn projected_prefix(
    expected: &BTreeMap<String, TensorData>,
    shape: pet_core::BackboneShape,
) -> PrefixTuning<B> {
    let mut prefix = PrefixTuningConfig::for_backbone(shape, 3)
        .with_prefix_projection(true)
        .with_encoder_hidden_size(8)
        .init::<B>(&device())
        .expect("prefix");
    let param = |key: &str| reference::<2>(expected, &format!("param.prompt_encoder.{key}"));
    let bias = |key: &str| reference::<1>(expected, &format!("param.prompt_encoder.{key}"));
    prefix.embedding = Param::from_tensor(param("embedding.weight"));
    let mlp: &mut PrefixMlp<B> = prefix.transform.as_mut().expect("projection");
    mlp.first.weight = Param::from_tensor(param("transform.0.weight").transpose());
    mlp.first.bias = Some(Param::from_tensor(bias("transform.0.bias")));
    mlp.second.weight = Param::from_tensor(param("transform.2.weight").transpose());
    mlp.second.bias = Some(Param::from_tensor(bias("transform.2.bias")));
    prefix
}

#[test]
fn p_tuning_v2_projection_reproduces_peft_gradients_and_materializes_to_the_saved_table() {
    let f = load_fixture();
    let expected = expected("prefix_projection");
    let prefix = projected_prefix(&expected, f.backbone.shape());
    let (hidden, loss) = f.run(&prefix);
    assert_close(
        "last_hidden_state",
        hidden,
        reference(&expected, "last_hidden_state"),
        HIDDEN_TOLERANCE,
    );
    let grads = loss.backward();
    let mlp = prefix.transform.as_ref().expect("projection");
    assert_grad(
        "embedding",
        &prefix.embedding,
        &grads,
        reference(&expected, "grad.prompt_encoder.embedding.weight"),
    );
    for (name, linear) in [("transform.0", &mlp.first), ("transform.2", &mlp.second)] {
        let key = |part: &str| format!("grad.prompt_encoder.{name}.{part}");
        // PEFT's [out, in] against Burn's [in, out].
        let weight = reference::<2>(&expected, &key("weight")).transpose();
        assert_grad(&key("weight"), &linear.weight, &grads, weight);
        let bias = linear.bias.as_ref().expect("bias");
        assert_grad(&key("bias"), bias, &grads, reference(&expected, &key("bias")));
    }
    // The exported table is what PEFT saved, and the saved adapter reproduces the outputs.
    let exported = prefix.export();
    assert!(exported.transform.is_none());
    let saved = PeftAdapter::read(&fixture("prefix_projection")).expect("adapter");
    let table = reference::<2>(&saved.tensors, "prompt_embeddings");
    assert_close("materialized table", exported.embedding.val(), table, HIDDEN_TOLERANCE);
    let imported = saved.to_prefix::<B>(f.backbone.shape(), &device()).expect("prefix");
    let (hidden, _) = f.run(&imported);
    assert_close(
        "imported last_hidden_state",
        hidden,
        reference(&expected, "last_hidden_state"),
        HIDDEN_TOLERANCE,
    );
}

#[test]
fn peft_prompt_import_reproduces_hidden_states_and_gradients() {
    let f = load_fixture();
    let adapter = PeftAdapter::read(&fixture("prompt")).expect("adapter");
    let prompt = adapter.to_prompt::<B>(f.backbone.shape(), &device()).expect("prompt");
    let expected = expected("prompt");
    let (hidden, loss) = f.run(&prompt);
    assert_eq!(hidden.dims(), [2, 10, 16], "4 virtual tokens before 6 tokens");
    assert_close(
        "last_hidden_state",
        hidden,
        reference(&expected, "last_hidden_state"),
        HIDDEN_TOLERANCE,
    );
    let grads = loss.backward();
    assert_grad(
        "prompt_encoder.embedding.weight",
        &prompt.embedding,
        &grads,
        reference(&expected, "grad.prompt_encoder.embedding.weight"),
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pet-peft-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn peft_adapters_round_trip_through_pet_deltas() {
    let f = load_fixture();
    let shape = f.backbone.shape();
    let sites = f.backbone.linear_sites();
    for case in ["lora", "prefix", "prompt"] {
        let original = PeftAdapter::read(&fixture(case)).expect("adapter");
        let written = match case {
            "lora" => PeftAdapter::from_lora(
                &original.to_lora::<B>(&sites, &device()).expect("lora"),
                &sites,
                "",
            ),
            "prefix" => PeftAdapter::from_prefix(
                &original.to_prefix::<B>(shape, &device()).expect("prefix"),
            ),
            _ => PeftAdapter::from_prompt(
                &original.to_prompt::<B>(shape, &device()).expect("prompt"),
                shape.encoder_layers,
                shape.num_heads,
            ),
        };
        let dir = temp_dir(case);
        written.write(&dir).expect("write");
        let back = PeftAdapter::read(&dir).expect("read back");
        assert_eq!(back.tensors, original.tensors, "{case}: same keys and values");
        for key in [
            "peft_type",
            "r",
            "lora_alpha",
            "num_virtual_tokens",
            "token_dim",
            "num_layers",
            "num_attention_heads",
        ] {
            assert_eq!(back.config.get(key), original.config.get(key), "{case}: `{key}`");
        }
        if case == "lora" {
            let targeted =
                |a: &PeftAdapter| a.lora_config().expect("config").targeted(&sites).expect("sites");
            assert_eq!(targeted(&back), targeted(&original));
        }
    }
}

#[test]
fn adapter_of_another_method_is_a_typed_error_naming_the_field() {
    let f = load_fixture();
    let adapter = PeftAdapter::read(&fixture("prefix")).expect("adapter");
    let err = adapter
        .to_lora::<B>(&f.backbone.linear_sites(), &device())
        .expect_err("prefix is not lora");
    assert!(matches!(err, PetError::InvalidConfig { .. }));
    assert!(
        err.to_string().contains("peft_type") && err.to_string().contains("adapter_config.json"),
        "{err}"
    );
}

#[test]
fn adapter_for_another_backbone_shape_is_rejected() {
    let f = load_fixture();
    let adapter = PeftAdapter::read(&fixture("prefix")).expect("adapter");
    let mut shape = f.backbone.shape();
    shape.encoder_layers = 3;
    let err = adapter.to_prefix::<B>(shape, &device()).expect_err("layers differ");
    assert!(err.to_string().contains("num_layers"), "{err}");
}

#[test]
fn missing_and_unexpected_adapter_weights_are_named() {
    let f = load_fixture();
    let sites = f.backbone.linear_sites();
    let mut adapter = PeftAdapter::read(&fixture("lora")).expect("adapter");
    let key = "base_model.model.encoder.layer.1.attention.self.value.lora_B.weight".to_string();
    let removed = adapter.tensors.remove(&key).expect("key present");
    match adapter.to_lora::<B>(&sites, &device()) {
        Err(PetError::MissingWeights { keys, .. }) => assert_eq!(keys, vec![key.clone()]),
        other => panic!("expected MissingWeights, got {other:?}"),
    }
    adapter.tensors.insert(key, removed.clone());
    adapter.tensors.insert("base_model.model.classifier.weight".into(), removed);
    match adapter.to_lora::<B>(&sites, &device()) {
        Err(PetError::UnexpectedWeights { keys, .. }) => {
            assert_eq!(keys, vec!["base_model.model.classifier.weight".to_string()])
        }
        other => panic!("expected UnexpectedWeights, got {other:?}"),
    }
}
