//! `pet export --model M --delta D --format peft --output DIR`: a pet delta checkpoint of LoRA,
//! prefix tuning (P-Tuning v2) or prompt tuning, with its task head, as a PEFT adapter folder
//! that transformers + PEFT load ([`pet_tasks::run::export_peft`]). Other methods are refused by
//! name.

use std::path::PathBuf;

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;

use crate::device::BackendJob;
use crate::train::resolve_folder;

/// Export a delta.
#[derive(Clone, Debug)]
pub struct ExportJob {
    /// Model folder or asset name the delta was trained on.
    pub model: String,
    /// pet delta checkpoint.
    pub delta: PathBuf,
    /// Output format; only `peft`.
    pub format: String,
    /// Output folder, written as a unit.
    pub output: PathBuf,
    /// Replace an existing output folder.
    pub overwrite: bool,
}

impl BackendJob for ExportJob {
    type Output = &'static str;

    fn run<B: AutodiffBackend>(self, device: B::Device, _backend: &str) -> Result<&'static str> {
        if self.format != "peft" {
            bail!("--format {}: the only export format is `peft`", self.format);
        }
        let folder = resolve_folder(&self.model)?;
        let (delta, output) = (&self.delta, &self.output);
        Ok(pet_tasks::run::export_peft::<B>(&folder, delta, &device, output, self.overwrite)?)
    }
}
