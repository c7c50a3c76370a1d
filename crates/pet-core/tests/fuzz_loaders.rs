//! Property-based ("fuzz") tests of pet-core's loaders: safetensors bytes and headers, delta
//! checkpoint metadata, PEFT adapter configs. Arbitrary bytes and structured-but-hostile values
//! (huge sizes, zero, negative, non-finite, wrong types) give `Ok` or a typed error, never a
//! panic; and what loads holds no more values than its file, so no input allocates beyond what
//! its file holds (the checks run before anything of a config's sizes is built).
//!
//! Cases per target: proptest's `PROPTEST_CASES` (256 by default, a few seconds in debug). The
//! long run: `PROPTEST_CASES=1000000 cargo test --release -p pet-core fuzz_loaders`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::TensorData;
use pet_core::Backbone;
use pet_core::checkpoint::DeltaCheckpoint;
use pet_core::delta::lora::LoraConfig;
use pet_core::delta::prefix::PrefixTuningConfig;
use pet_core::delta::prompt::PromptTuningConfig;
use pet_core::delta::set::DeltaSpec;
use pet_core::peft::PeftAdapter;
use pet_core::safetensors_io::{TensorFile, parse_header, parse_tensor_file};
use pet_core::task::restore::{checkpoint_deltas, peft_deltas};
use pet_core::testing::conformance::Tuned;
use pet_core::testing::{TestInner as B, TinyEncoder, TinyEncoderConfig};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};

/// Cases from `PROPTEST_CASES`, no regression files written into the crate.
fn config() -> Config {
    Config { failure_persistence: None, ..Config::default() }
}

fn backbone() -> TinyEncoder<B> {
    TinyEncoderConfig::tiny().init::<B>(&Default::default())
}

fn numel(tensors: &BTreeMap<String, TensorData>) -> usize {
    tensors.values().map(TensorData::num_elements).sum()
}

/// JSON values a hostile file may hold where a size, a rate or a name is expected.
fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1_000_000_000u64)),
        Just(json!(1u64 << 40)),
        Just(json!(1e308)),
        Just(json!(-1e308)),
        Just(json!(0.5)),
        Just(json!(1.0)),
        Just(Value::Null),
        Just(json!(true)),
        Just(json!("none")),
        Just(json!("NaN")),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0usize..40).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z_]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A small tensor of another shape than its key's (rank 0 to 3, dims 0 to 4).
fn small_tensor() -> impl Strategy<Value = TensorData> {
    prop::collection::vec(0usize..5, 0..4).prop_map(|shape| {
        let n = shape.iter().product::<usize>();
        TensorData::new(vec![0.5f32; n], shape)
    })
}

// ---------------------------------------------------------------- safetensors

/// A safetensors file of one tensor whose header says anything: a dtype, a shape and offsets
/// drawn from hostile ranges, beside `data` bytes.
fn hostile_safetensors() -> impl Strategy<Value = Vec<u8>> {
    let dtype =
        prop::sample::select(vec!["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "X"]);
    let dim = prop_oneof![0usize..6, Just(usize::MAX), Just(1usize << 40), any::<usize>()];
    (
        dtype,
        prop::collection::vec(dim, 0..4),
        (0usize..80, 0usize..80),
        prop::collection::vec(any::<u8>(), 0..80),
        prop::option::of(".{0,8}"),
        any::<u8>(),
    )
        .prop_map(|(dtype, shape, (start, end), data, meta, cut)| {
            let mut header =
                json!({ "t": { "dtype": dtype, "shape": shape, "data_offsets": [start, end] } });
            if let Some(meta) = meta {
                header["__metadata__"] = json!({ "format": meta });
            }
            let header = header.to_string();
            let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend_from_slice(&data);
            // Sometimes the length field lies, or the file is cut.
            match cut % 8 {
                0 => bytes[0] = bytes[0].wrapping_add(cut),
                1 => bytes.truncate(bytes.len() / 2),
                _ => {}
            }
            bytes
        })
}

fn check_safetensors(bytes: &[u8]) {
    let path = Path::new("fuzz.safetensors");
    let header = parse_header(path, bytes, bytes.len() as u64);
    match parse_tensor_file(path, bytes) {
        Ok(file) => {
            // What loads is what the file holds: at most one value per stored byte.
            assert!(numel(&file.tensors) <= bytes.len());
            let header = header.expect("a file that parses has a header that parses");
            assert_eq!(header.shapes, file.shapes());
        }
        Err(e) => assert!(e.to_string().contains("fuzz.safetensors"), "{e}"),
    }
}

/// A valid file of tensors of every dtype pet reads, with metadata, as bytes.
fn valid_safetensors() -> Vec<u8> {
    use safetensors::{Dtype, tensor::TensorView};
    let f32s: Vec<u8> =
        [1.0f32, -2.0, 0.5, 3.0, 4.0, 5.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let halves: Vec<u8> =
        [0x3c00u16, 0xc000, 0x3555, 0x0001].iter().flat_map(|v| v.to_le_bytes()).collect();
    let f64s: Vec<u8> = [0.25f64, -1e10].iter().flat_map(|v| v.to_le_bytes()).collect();
    let i32s: Vec<u8> = [7i32, -3, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = vec![
        ("a.weight", TensorView::new(Dtype::F32, vec![2, 3], &f32s)),
        ("b.f16", TensorView::new(Dtype::F16, vec![4], &halves)),
        ("c.bf16", TensorView::new(Dtype::BF16, vec![2, 2], &halves)),
        ("d.f64", TensorView::new(Dtype::F64, vec![2], &f64s)),
        ("e.ids", TensorView::new(Dtype::I32, vec![3], &i32s)),
    ];
    let views: Vec<(&str, TensorView<'_>)> =
        views.into_iter().map(|(k, v)| (k, v.expect("view"))).collect();
    let metadata = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata)).expect("serialize")
}

thread_local! {
    static VALID: Vec<u8> = valid_safetensors();
}

/// The valid file with a few bytes replaced and maybe cut short.
fn mutated_safetensors() -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6);
    (edits, prop::option::of(any::<prop::sample::Index>())).prop_map(|(edits, cut)| {
        let mut bytes = VALID.with(Clone::clone);
        for (at, byte) in edits {
            let n = bytes.len();
            bytes[at.index(n)] = byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        bytes
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn safetensors_mutated_files_never_panic(bytes in mutated_safetensors()) {
        check_safetensors(&bytes);
    }

    #[test]
    fn safetensors_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_safetensors(&bytes);
    }

    #[test]
    fn safetensors_hostile_headers_never_panic(bytes in hostile_safetensors()) {
        check_safetensors(&bytes);
    }
}

// ---------------------------------------------------------------- delta checkpoints

/// A real checkpoint of every delta method over the tiny encoder, as its file holds it.
fn checkpoint_file() -> TensorFile {
    let backbone = backbone();
    let spec = DeltaSpec::preset("prompt+prefix+lora+adapter").expect("preset");
    let delta = spec.build(&backbone, &Default::default()).expect("deltas");
    let identity = backbone.identity();
    let model = Tuned::<B, _, _> { backbone, delta, backend: Default::default() };
    let method = json!({ "task": "fuzz", "delta": spec });
    let checkpoint = DeltaCheckpoint::capture::<B, _>(
        &model,
        &|e| e.path.starts_with("delta."),
        method,
        identity,
    );
    // One folder per thread: every thread that runs a checkpoint target builds its own file.
    let thread = format!("{:?}", std::thread::current().id())
        .replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let dir = std::env::temp_dir().join(format!("pet-fuzz-ckpt-{}-{thread}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("delta.safetensors");
    checkpoint.save(&path).expect("save");
    pet_core::safetensors_io::read_tensor_file(&path).expect("read")
}

/// Where a hostile value may land in `method.delta`.
const SPEC_FIELDS: [&str; 16] = [
    "/prompt/num_virtual_tokens",
    "/prompt/sample_vocab_seed",
    "/prompt/init",
    "/prefix/num_virtual_tokens",
    "/prefix/prefix_projection",
    "/prefix/encoder_hidden_size",
    "/prefix/prefix_dropout",
    "/lora/r",
    "/lora/lora_alpha",
    "/lora/lora_dropout",
    "/lora/target_modules",
    "/adapter/reduction_factor",
    "/adapter/variant",
    "/adapter/non_linearity",
    "/trainability",
    "/prompt",
];

#[derive(Clone, Debug)]
enum CheckpointEdit {
    /// A spec field set to a hostile value.
    Spec(usize, Value),
    /// A prompt init of one of its forms with a hostile parameter.
    Init(usize, Value),
    /// A metadata entry replaced by arbitrary text.
    Metadata(usize, String),
    /// A stored tensor replaced by one of another shape.
    Tensor(usize, TensorData),
    /// A stored tensor removed.
    Remove(usize),
}

fn checkpoint_edit() -> impl Strategy<Value = CheckpointEdit> {
    prop_oneof![
        4 => (0..SPEC_FIELDS.len(), hostile_value()).prop_map(|(i, v)| CheckpointEdit::Spec(i, v)),
        1 => (0usize..5, hostile_value()).prop_map(|(i, v)| CheckpointEdit::Init(i, v)),
        1 => (0usize..6, ".{0,24}").prop_map(|(i, s)| CheckpointEdit::Metadata(i, s)),
        1 => (any::<usize>(), small_tensor()).prop_map(|(i, t)| CheckpointEdit::Tensor(i, t)),
        1 => any::<usize>().prop_map(CheckpointEdit::Remove),
    ]
}

fn apply_edit(file: &mut TensorFile, edit: &CheckpointEdit) {
    let mut method: Value =
        serde_json::from_str(file.metadata.get("method").map_or("{}", String::as_str))
            .unwrap_or(Value::Null);
    match edit {
        CheckpointEdit::Spec(field, value) => {
            if let Some(slot) = method.pointer_mut(&format!("/delta{}", SPEC_FIELDS[*field])) {
                *slot = value.clone();
            }
        }
        CheckpointEdit::Init(form, value) => {
            let init = match form {
                0 => json!({ "Normal": { "std": value } }),
                1 => json!({ "Uniform": { "bound": value } }),
                2 => json!({ "VptUniform": { "patch_area": value } }),
                3 => json!({ "SampleVocab": { "seed": value } }),
                _ => value.clone(),
            };
            if let Some(Value::Object(prompt)) = method.pointer_mut("/delta/prompt") {
                prompt.insert("init".into(), init);
                prompt.insert("sample_vocab_seed".into(), Value::Null);
            }
        }
        CheckpointEdit::Metadata(key, text) => {
            let keys = ["format", "format_version", "method", "backbone", "param_counts", "other"];
            file.metadata.insert(keys[*key].to_string(), text.clone());
            return;
        }
        CheckpointEdit::Tensor(index, data) => {
            if let Some(key) = file.tensors.keys().nth(index % file.tensors.len().max(1)).cloned() {
                file.tensors.insert(key, data.clone());
            }
            return;
        }
        CheckpointEdit::Remove(index) => {
            if let Some(key) = file.tensors.keys().nth(index % file.tensors.len().max(1)).cloned() {
                file.tensors.remove(&key);
            }
            return;
        }
    }
    file.metadata.insert("method".into(), method.to_string());
}

thread_local! {
    static CHECKPOINT: TensorFile = checkpoint_file();
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn delta_checkpoint_metadata_never_panics(edits in prop::collection::vec(checkpoint_edit(), 1..4)) {
        let mut file = CHECKPOINT.with(Clone::clone);
        for edit in &edits {
            apply_edit(&mut file, edit);
        }
        let path = PathBuf::from("fuzz-delta.safetensors");
        let Ok(checkpoint) = DeltaCheckpoint::from_tensor_file(&path, file) else { return Ok(()) };
        let stored = numel(&checkpoint.tensors);
        if let Ok((_, set)) = checkpoint_deltas(backbone(), &checkpoint, &Default::default()) {
            // What was built is what the file holds, value for value.
            let built = pet_core::params::read_params::<B, _>(&set, &|_| true);
            prop_assert_eq!(numel(&built), stored);
        }
    }
}

// ---------------------------------------------------------------- PEFT adapters

/// Real adapters of the three PEFT methods over the tiny encoder.
fn adapters() -> Vec<PeftAdapter> {
    let device = Default::default();
    let backbone = backbone();
    let sites = backbone.linear_sites();
    let lora = LoraConfig::new(2).init_sites::<B>(&sites, &device).expect("lora");
    let prompt = PromptTuningConfig::new(3, 16).init::<B>(None, &device).expect("prompt");
    let prefix =
        PrefixTuningConfig::for_backbone(backbone.shape(), 3).init::<B>(&device).expect("prefix");
    let mut out = vec![
        PeftAdapter::from_lora(&lora, &sites, ""),
        PeftAdapter::from_prompt(&prompt, 2, 2),
        PeftAdapter::from_prefix(&prefix),
    ];
    for adapter in &mut out {
        adapter.source = PathBuf::from("fuzz-adapter");
    }
    out
}

/// Field names an adapter config may hold: PEFT's own and a few it does not have.
const PEFT_FIELDS: [&str; 30] = [
    "peft_type",
    "task_type",
    "r",
    "target_modules",
    "lora_alpha",
    "lora_dropout",
    "use_rslora",
    "use_dora",
    "fan_in_fan_out",
    "bias",
    "init_lora_weights",
    "layers_to_transform",
    "layers_pattern",
    "rank_pattern",
    "alpha_pattern",
    "exclude_modules",
    "modules_to_save",
    "megatron_config",
    "loftq_config",
    "lora_bias",
    "target_parameters",
    "num_virtual_tokens",
    "token_dim",
    "num_layers",
    "num_attention_heads",
    "num_transformer_submodules",
    "prompt_tuning_init",
    "prefix_projection",
    "encoder_hidden_size",
    "not_a_peft_field",
];

thread_local! {
    static ADAPTERS: Vec<PeftAdapter> = adapters();
}

fn check_adapter(adapter: &mut PeftAdapter) {
    let backbone = backbone();
    let _ = adapter.check_config();
    let saved = numel(&adapter.take_saved_modules());
    let stored = numel(&adapter.tensors) + saved;
    if let Ok(set) = peft_deltas(adapter, &backbone, &Default::default()) {
        let built = pet_core::params::read_params::<B, _>(&set, &|_| true);
        assert_eq!(numel(&built), numel(&adapter.tensors));
        assert!(numel(&built) <= stored);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn peft_adapter_configs_never_panic(
        which in 0usize..3,
        fields in prop::collection::vec((0..PEFT_FIELDS.len(), hostile_value()), 1..5),
        tensor in prop::option::of((any::<usize>(), small_tensor())),
    ) {
        let mut adapter = ADAPTERS.with(|a| a[which].clone());
        for (field, value) in fields {
            adapter.config.insert(PEFT_FIELDS[field].to_string(), value);
        }
        if let Some((index, data)) = tensor {
            let key = adapter.tensors.keys().nth(index % adapter.tensors.len()).cloned();
            adapter.tensors.insert(key.unwrap_or_default(), data);
        }
        check_adapter(&mut adapter);
    }

    #[test]
    fn peft_adapter_config_text_never_panics(text in ".{0,64}", which in 0usize..3) {
        let path = Path::new("fuzz-adapter/adapter_config.json");
        if let Ok(config) = PeftAdapter::parse_config(path, &text) {
            let mut adapter = ADAPTERS.with(|a| a[which].clone());
            adapter.config = config;
            check_adapter(&mut adapter);
        }
        let _ = PeftAdapter::parse_config(path, &format!("{{\"peft_type\": \"LORA\", \"r\": {text}}}"));
    }
}
