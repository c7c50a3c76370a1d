//! Test support shared by every crate: a tiny reference encoder that exposes every seam, a test
//! backend, and the conformance suite that every delta method runs.

/// The conformance suite.
pub mod conformance;
pub mod parity;
pub mod temp_dir;
pub mod tiny_encoder;

pub use temp_dir::TempDir;

pub use tiny_encoder::{TinyEncoder, TinyEncoderConfig, TinyInput};

static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Exclusive use of the backend's global random generator for the rest of a test, so that a
/// seeded test draws the same numbers whatever other tests run beside it.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    BACKEND_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The field and reason of a [`crate::PetError::InvalidConfig`]; panics on anything else, so a
/// test can assert which field a check names.
pub fn invalid_config<T: std::fmt::Debug>(result: crate::Result<T>) -> (String, String) {
    match result {
        Err(crate::PetError::InvalidConfig { field, reason }) => (field, reason),
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

/// The backend of unit and conformance tests: CPU with autodiff.
pub type TestBackend = burn::backend::Autodiff<burn::backend::Flex>;

/// Its inner, inference-only backend.
pub type TestInner = burn::backend::Flex;
