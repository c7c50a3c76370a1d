//! The parity fixtures of the backbone tests: a case folder per fixture family
//! (`tests/parity/<family>/<case>`, written by the family's `generate.py`), its recorded
//! `expected.safetensors`, the encoder input stored there, the named tolerances, and the
//! comparison of every parameter's gradient with the reference.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::module::AutodiffModule;
use burn::tensor::{Int, Tensor, TensorData};
use pet_core::blocks::EncoderInput;
use pet_core::blocks::hf_keys::BertKeys;
use pet_core::safetensors_io::read_tensor_file;
use pet_core::testing::TestBackend as B;
use pet_core::testing::conformance::{assert_close, max_abs_diff};
use pet_core::testing::parity;

pub use pet_core::testing::parity::HIDDEN_TOLERANCE;

/// The folder of case `name` of fixture family `family`, e.g. `case("deberta", "v3")`.
pub fn case(family: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity").join(family).join(name)
}

/// The reference tensors of a case (`expected.safetensors`), by name.
pub fn expected(family: &str, name: &str) -> BTreeMap<String, TensorData> {
    read_tensor_file(&case(family, name).join("expected.safetensors"))
        .expect("expected fixture")
        .tensors
}

/// A recorded tensor on the test backend.
pub fn tensor<const D: usize>(data: &TensorData) -> Tensor<B, D> {
    Tensor::from_data(data.clone(), &Default::default())
}

/// The encoder input recorded with the references: `input_ids`, `attention_mask` and, when the
/// fixture has them, `token_type_ids`.
pub fn input(expected: &BTreeMap<String, TensorData>) -> EncoderInput<B> {
    let ids = |key: &str| {
        expected.get(key).map(|d| {
            Tensor::<B, 2, Int>::from_data(d.clone().convert::<i64>(), &Default::default())
        })
    };
    EncoderInput {
        input_ids: ids("input_ids").expect("input_ids"),
        attention_mask: tensor(&expected["attention_mask"]),
        token_type_ids: ids("token_type_ids"),
    }
}

/// Asserts that `ours` is within [`HIDDEN_TOLERANCE`] of the reference `theirs`, after printing
/// their largest difference as `<label>: <what> max abs diff <d>`.
pub fn check_close<const D: usize>(
    label: &str,
    what: &str,
    ours: Tensor<B, D>,
    theirs: Tensor<B, D>,
) {
    eprintln!("{label}: {what} max abs diff {}", max_abs_diff(ours.clone(), theirs.clone()));
    assert_close(what, ours, theirs, HIDDEN_TOLERANCE);
}

/// Compares the gradient of `loss` for every parameter of `model` with the reference under
/// BERT's key map ([`parity::check_gradients`]).
pub fn check_gradients<M: AutodiffModule<B>>(
    name: &str,
    model: &M,
    loss: Tensor<B, 1>,
    expected: &BTreeMap<String, TensorData>,
) {
    parity::check_gradients(name, model, loss, expected, &BertKeys);
}

/// A copy of the `config.json` and `model.safetensors` of a case in a fresh temporary folder
/// (named after `family` and `to`, and unique per call, so tests on parallel threads that edit
/// their copies never share one).
pub fn copy_case(family: &str, name: &str, to: &str) -> PathBuf {
    static COPIES: AtomicUsize = AtomicUsize::new(0);
    let copy = COPIES.fetch_add(1, Ordering::Relaxed);
    let process = std::process::id();
    let dir = std::env::temp_dir().join(format!("pet-nlp-{family}-{to}-{process}-{copy}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(case(family, name).join(file), dir.join(file)).expect("copy");
    }
    dir
}
