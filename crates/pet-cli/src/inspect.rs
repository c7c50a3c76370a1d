//! `pet inspect DELTA`: what a delta checkpoint or PEFT adapter folder holds.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use pet_core::checkpoint::DeltaCheckpoint;
use pet_core::peft::PeftAdapter;

/// A human-readable summary of the delta at `path`: a pet checkpoint file, or a PEFT adapter
/// folder.
///
/// # Errors
/// When the file or folder cannot be read as either.
pub fn describe(path: &Path) -> Result<String> {
    let mut out = String::new();
    if path.is_dir() {
        let mut adapter = PeftAdapter::read(path)
            .with_context(|| format!("reading PEFT adapter {}", path.display()))?;
        let peft_type = adapter
            .config
            .get("peft_type")
            .and_then(|v| v.as_str())
            .unwrap_or("unknown")
            .to_string();
        let task = adapter.task_type().unwrap_or("(not recorded)").to_string();
        let head = adapter.take_saved_modules();
        let scalars: usize = adapter.tensors.values().map(|t| t.num_elements()).sum();
        writeln!(out, "PEFT adapter   {}", path.display())?;
        writeln!(out, "method         {peft_type}")?;
        writeln!(out, "task           {task}")?;
        writeln!(
            out,
            "base model     {}",
            adapter
                .config
                .get("base_model_name_or_path")
                .and_then(|v| v.as_str())
                .unwrap_or("(not recorded)")
        )?;
        writeln!(out, "parameters     {scalars} in {} tensors", adapter.tensors.len())?;
        if !head.is_empty() {
            let head_scalars: usize = head.values().map(|t| t.num_elements()).sum();
            let names: Vec<&str> = head.keys().map(String::as_str).collect();
            writeln!(out, "task head      {head_scalars} in {}", names.join(", "))?;
        }
        return Ok(out);
    }
    let checkpoint = DeltaCheckpoint::load(path)
        .with_context(|| format!("reading delta checkpoint {}", path.display()))?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    writeln!(out, "pet delta      {} ({:.1} KiB)", path.display(), bytes as f64 / 1024.0)?;
    writeln!(out, "method         {}", checkpoint.method)?;
    writeln!(out, "backbone       {}", checkpoint.backbone)?;
    write!(out, "parameters     {} stored", checkpoint.num_params())?;
    match checkpoint.counts {
        Some(c) => {
            writeln!(out, "; {} trainable of {} ({:.4}%)", c.trainable, c.total, c.percent())?
        }
        None => writeln!(out)?,
    }
    for (name, tensor) in &checkpoint.tensors {
        writeln!(out, "  {name:<48} {:?}", tensor.shape.as_slice())?;
    }
    Ok(out)
}
