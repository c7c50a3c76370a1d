//! Task models: backbone + delta + head, with their batches, losses and evaluation.

pub mod classification;
pub mod tagging;
