//! Where the CLI tests find pet-nlp's parity fixtures.

use std::path::{Path, PathBuf};

/// The fixture folder `case` of the family `family` (`encoders`, `deberta`) under
/// `crates/pet-nlp/tests/parity/`.
pub(crate) fn parity(family: &str, case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pet-nlp/tests/parity").join(family).join(case)
}
