//! Real weights: all-MiniLM-L6-v2, fetched into the asset cache, loaded through the production
//! folder loader and tokenizer, reproduces transformers' hidden states and pooler output
//! (fixture: `tests/parity/minilm/generate.py`).
//!
//! CI sets `PET_REQUIRE_ASSETS=1`, which fetches the asset and makes its absence a failure; a
//! local run without the asset in the cache says it skipped.

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor};
use pet_cli::fetch::{catalogue, fetch};
use pet_core::blocks::EncoderInput;
use pet_core::safetensors_io::read_tensor_file;
use pet_core::testing::TestInner as B;
use pet_core::testing::conformance::max_abs_diff;
use pet_core::{Backbone, NoDelta};
use pet_nlp::load_encoder;
use pet_nlp::tokenize::TextTokenizer;

/// float32 through 6 layers of 384 units, kernels in another order than PyTorch's.
const TOLERANCE: f64 = 1e-4;

fn minilm() -> Option<PathBuf> {
    let name = "all-minilm-l6-v2";
    if std::env::var_os("PET_REQUIRE_ASSETS").is_some() {
        return Some(fetch(name).expect("the asset fetches"));
    }
    let manifest = catalogue().load(name).expect("manifest");
    let dir = pet_assets::asset_dir(&pet_assets::cache_root().ok()?, &manifest);
    pet_assets::is_complete(&dir, &manifest, &[]).expect("a model needs no recipe").then_some(dir)
}

#[test]
fn minilm_reproduces_transformers_hidden_states_and_pooler() {
    let Some(dir) = minilm() else {
        eprintln!(
            "skipped: all-minilm-l6-v2 is not in the asset cache (set PET_REQUIRE_ASSETS=1 to fetch it)"
        );
        return;
    };
    let device = Default::default();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/minilm/expected.safetensors");
    let expected = read_tensor_file(&fixture).expect("fixture").tensors;
    let (model, folder, report) = load_encoder::<B>(&dir, &device).expect("MiniLM loads");
    assert_eq!(folder.key_prefix, "", "a bare encoder");
    assert_eq!(report.loaded, 103, "5 embedding + 6 x 16 layer + 2 pooler tensors");
    let ints =
        |key: &str| Tensor::<B, 2, Int>::from_data(expected[key].clone().convert::<i64>(), &device);
    let input = EncoderInput {
        input_ids: ints("input_ids"),
        attention_mask: Tensor::from_data(expected["attention_mask"].clone(), &device),
        token_type_ids: Some(ints("token_type_ids")),
    };
    let out = model.forward_with(input, &NoDelta);
    let hidden = Tensor::<B, 3>::from_data(expected["last_hidden_state"].clone(), &device);
    let diff = max_abs_diff(out.hidden, hidden);
    assert!(diff < TOLERANCE, "last_hidden_state differs by {diff}");
    let pooled = Tensor::<B, 2>::from_data(expected["pooler_output"].clone(), &device);
    let diff = max_abs_diff(out.pooled.expect("MiniLM has a pooler"), pooled);
    assert!(diff < TOLERANCE, "pooler_output differs by {diff}");
    // The tokenizer of the folder gives the fixture's ids.
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"), 128).expect("tokenizer");
    let pair =
        tokenizer.encode("Is this email spam?", Some("Win a FREE cruise now!!!")).expect("encode");
    let row: Vec<i64> =
        expected["input_ids"].clone().convert::<i64>().into_vec::<i64>().expect("ids");
    let width = row.len() / 2;
    let ours: Vec<i64> = pair.input_ids.iter().map(|&i| i as i64).collect();
    assert_eq!(ours, row[width..width + ours.len()].to_vec());
}
