//! Task heads: map backbone outputs to task outputs.

pub mod classification;
pub mod crf;
pub mod qa;
pub mod token_classification;

pub use classification::{ClassificationHead, ClassificationHeadConfig};
pub use crf::{Crf, CrfConfig};
pub use qa::{QaHead, QaHeadConfig};
pub use token_classification::{TokenClassificationHead, TokenClassificationHeadConfig};
