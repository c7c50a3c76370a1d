//! The comparison every backbone's parity test makes with its Hugging Face reference: recorded
//! tensors, the named tolerances, and the gradient of every parameter against the reference's
//! `grad.<key>` under the backbone's [`KeyMap`].

use std::collections::BTreeMap;

use burn::module::AutodiffModule;
use burn::tensor::{Tensor, TensorData, backend::AutodiffBackend};

use crate::blocks::hf_keys::{KeyMap, transpose, transposed_paths};
use crate::testing::conformance::{assert_close, grads_by_path, max_abs_diff};

/// Forward outputs: float32 kernels in another order than PyTorch's.
pub const HIDDEN_TOLERANCE: f64 = 2e-5;
/// Gradients, relative to the largest magnitude of each reference gradient.
pub const GRAD_RELATIVE_TOLERANCE: f64 = 1e-4;

/// A recorded tensor on backend `B`'s default device.
pub fn recorded<B: burn::tensor::backend::Backend, const D: usize>(
    data: &TensorData,
) -> Tensor<B, D> {
    Tensor::from_data(data.clone(), &Default::default())
}

/// Compares the gradient of `loss` for every parameter of `model` with the reference
/// `grad.<Hugging Face key>` of `expected` (`keys` renames the paths and names the tensors
/// PyTorch stores transposed), within [`GRAD_RELATIVE_TOLERANCE`], and checks that every
/// reference gradient was compared. Prints the largest relative difference under `name`.
///
/// # Panics
/// On a missing reference, a gradient out of tolerance, or a reference left uncompared.
pub fn check_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    name: &str,
    model: &M,
    loss: Tensor<B, 1>,
    expected: &BTreeMap<String, TensorData>,
    keys: &dyn KeyMap,
) {
    let grads = grads_by_path(model, &loss.backward());
    let transposed = transposed_paths::<B, M>(model, keys);
    let mut checked = 0;
    let mut worst = (0.0f64, String::new());
    for (path, grad) in &grads {
        let key = format!("grad.{}", keys.hf_key(path));
        let reference =
            expected.get(&key).unwrap_or_else(|| panic!("no reference gradient `{key}`"));
        let reference = if transposed.contains(path) {
            transpose(reference).expect("2-D")
        } else {
            reference.clone()
        };
        let diff = match grad.shape.len() {
            1 => compare::<B, 1>(&key, grad, &reference),
            2 => compare::<B, 2>(&key, grad, &reference),
            3 => compare::<B, 3>(&key, grad, &reference),
            _ => compare::<B, 4>(&key, grad, &reference),
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
fn compare<B: AutodiffBackend, const D: usize>(
    key: &str,
    ours: &TensorData,
    theirs: &TensorData,
) -> f64 {
    let (ours, theirs) = (recorded::<B, D>(ours), recorded::<B, D>(theirs));
    let scale = max_abs_diff(theirs.clone(), theirs.zeros_like()).max(1.0);
    let diff = max_abs_diff(ours.clone(), theirs.clone()) / scale;
    assert_close(key, ours, theirs, GRAD_RELATIVE_TOLERANCE);
    diff
}
