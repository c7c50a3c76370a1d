//! Task models: backbone + delta + head, with their batches, losses and evaluation.

pub mod classification;
pub mod qa;
pub mod tagging;
