//! Test support shared by every crate: a tiny reference encoder that exposes every seam, a test
//! backend, and the conformance suite that every delta method runs.

pub mod conformance;
pub mod tiny_encoder;

pub use tiny_encoder::{TinyEncoder, TinyEncoderConfig, TinyInput};

/// The backend of unit and conformance tests: CPU with autodiff.
pub type TestBackend = burn::backend::Autodiff<burn::backend::Flex>;

/// Its inner, inference-only backend.
pub type TestInner = burn::backend::Flex;
