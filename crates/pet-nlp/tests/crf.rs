//! Parity of [`Crf`] with pytorch-crf 0.7.2 (`torchcrf.CRF`, batch first) on 5 tags and a batch
//! of 3 rows keeping 6, 4 and 1 of 6 steps (fixture: `tests/parity/crf/generate.py`): the
//! log-likelihood with `reduction="none"`, the gradients of its sum with respect to the emissions
//! and the three parameters, and the Viterbi paths.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Param;
use burn::tensor::{Int, Tensor, TensorData};
use pet_core::safetensors_io::read_tensor_file;
use pet_core::testing::TestBackend as B;
use pet_core::testing::conformance::assert_close;
use pet_nlp::heads::{Crf, CrfConfig};

/// Log-likelihoods: float32 sums in another order than torchcrf's, relative to their scale.
const LIKELIHOOD_TOLERANCE: f64 = 1e-5;
/// Gradients, relative to the largest magnitude of each reference gradient.
const GRAD_TOLERANCE: f64 = 1e-5;

struct Fixture {
    tensors: BTreeMap<String, TensorData>,
    metadata: BTreeMap<String, String>,
}

fn load() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity/crf/expected.safetensors");
    let file = read_tensor_file(&path).expect("crf fixture");
    Fixture { tensors: file.tensors, metadata: file.metadata }
}

impl Fixture {
    fn float<const D: usize>(&self, key: &str) -> Tensor<B, D> {
        let data = self.tensors.get(key).unwrap_or_else(|| panic!("fixture has no `{key}`"));
        Tensor::from_data(data.clone(), &Default::default())
    }

    fn int(&self, key: &str) -> Vec<i64> {
        let data = self.tensors.get(key).unwrap_or_else(|| panic!("fixture has no `{key}`"));
        data.clone().convert::<i64>().into_vec::<i64>().expect("integers")
    }

    /// A CRF of the fixture's size with torchcrf's parameters in place of the random ones.
    fn crf(&self) -> Crf<B> {
        let mut crf = CrfConfig::new(5).init::<B>(&Default::default());
        crf.start_transitions = Param::from_tensor(self.float("start_transitions"));
        crf.end_transitions = Param::from_tensor(self.float("end_transitions"));
        crf.transitions = Param::from_tensor(self.float("transitions"));
        crf
    }

    fn tags(&self) -> Tensor<B, 2, Int> {
        let data = self.tensors["tags"].clone().convert::<i64>();
        Tensor::from_data(data, &Default::default())
    }
}

fn assert_grad<const D: usize>(
    what: &str,
    ours: Option<Tensor<pet_core::testing::TestInner, D>>,
    theirs: Tensor<B, D>,
) {
    let ours = ours.unwrap_or_else(|| panic!("{what}: no gradient"));
    let ours = Tensor::<B, D>::from_data(ours.into_data(), &Default::default());
    assert_close(what, ours, theirs, GRAD_TOLERANCE)
}

#[test]
fn crf_log_likelihood_and_gradients_match_torchcrf() {
    let _serial = pet_core::testing::serial();
    let f = load();
    assert_eq!(f.metadata.get("pytorch-crf").map(String::as_str), Some("0.7.2"));
    let crf = f.crf();
    let emissions = f.float::<3>("emissions").require_grad();
    let llh = crf.log_likelihood(emissions.clone(), f.tags(), f.float("mask"));
    assert_close("log_likelihood", llh.clone(), f.float("log_likelihood"), LIKELIHOOD_TOLERANCE);
    let grads = llh.sum().backward();
    assert_grad("grad.emissions", emissions.grad(&grads), f.float("grad.emissions"));
    assert_grad(
        "grad.start_transitions",
        crf.start_transitions.val().grad(&grads),
        f.float("grad.start_transitions"),
    );
    assert_grad(
        "grad.end_transitions",
        crf.end_transitions.val().grad(&grads),
        f.float("grad.end_transitions"),
    );
    assert_grad(
        "grad.transitions",
        crf.transitions.val().grad(&grads),
        f.float("grad.transitions"),
    );
}

#[test]
fn crf_viterbi_paths_match_torchcrf_decode() {
    let _serial = pet_core::testing::serial();
    let f = load();
    let paths = f.crf().decode(f.float("emissions"), f.float("mask"));
    let expected: Vec<Vec<usize>> = f
        .int("viterbi")
        .chunks(6)
        .map(|row| row.iter().filter(|&&t| t >= 0).map(|&t| t as usize).collect())
        .collect();
    assert_eq!(expected.iter().map(Vec::len).collect::<Vec<_>>(), vec![6, 4, 1]);
    assert_eq!(paths, expected);
}
