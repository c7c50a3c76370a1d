//! Task heads: map backbone outputs to task outputs.

pub mod classification;

pub use classification::{ClassificationHead, ClassificationHeadConfig};
