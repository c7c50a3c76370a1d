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
use pet_core::blocks::hf_keys::{BertKeys, to_hf, transpose, transposed_paths};
use pet_core::safetensors_io::read_tensor_file;
use pet_core::testing::TestBackend as B;
use pet_core::testing::conformance::{assert_close, grads_by_path, max_abs_diff};

/// Forward outputs: float32 kernels in another order than PyTorch's.
pub const HIDDEN_TOLERANCE: f64 = 2e-5;
/// Gradients, relative to the largest magnitude of each reference gradient.
pub const GRAD_RELATIVE_TOLERANCE: f64 = 1e-4;

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

/// Compares the gradient of `loss` for every parameter of `model` with the reference
/// `grad.<Hugging Face key>` of `expected` (linear weights transposed to Burn's layout), within
/// [`GRAD_RELATIVE_TOLERANCE`], and checks that every reference gradient was compared. Prints
/// the largest relative difference under the label `name`.
pub fn check_gradients<M: AutodiffModule<B>>(
    name: &str,
    model: &M,
    loss: Tensor<B, 1>,
    expected: &BTreeMap<String, TensorData>,
) {
    let grads = grads_by_path(model, &loss.backward());
    let transposed = transposed_paths::<B, M>(model, &BertKeys);
    let mut checked = 0;
    let mut worst = (0.0f64, String::new());
    for (path, grad) in &grads {
        let key = format!("grad.{}", to_hf(path));
        let reference =
            expected.get(&key).unwrap_or_else(|| panic!("no reference gradient `{key}`"));
        let reference = if transposed.contains(path) {
            transpose(reference).expect("2-D")
        } else {
            reference.clone()
        };
        let diff = match grad.shape.len() {
            1 => compare::<1>(&key, grad, &reference),
            2 => compare::<2>(&key, grad, &reference),
            _ => compare::<3>(&key, grad, &reference),
        };
        if diff > worst.0 {
            worst = (diff, key);
        }
        checked += 1;
    }
    eprintln!("{name}: largest relative gradient diff {} at {}", worst.0, worst.1);
    let reference_grads = expected.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(checked, reference_grads, "every parameter's gradient is compared");
}

/// Asserts closeness and returns the difference relative to the reference scale.
fn compare<const D: usize>(key: &str, ours: &TensorData, theirs: &TensorData) -> f64 {
    let (ours, theirs) = (tensor::<D>(ours), tensor::<D>(theirs));
    let scale = max_abs_diff(theirs.clone(), theirs.zeros_like()).max(1.0);
    let diff = max_abs_diff(ours.clone(), theirs.clone()) / scale;
    assert_close(key, ours, theirs, GRAD_RELATIVE_TOLERANCE);
    diff
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
