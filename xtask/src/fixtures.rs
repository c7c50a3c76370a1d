//! `cargo xtask fixtures`: regenerate every parity fixture. Creates a virtual environment in
//! `target/fixtures-venv` with the pinned reference stack of `fixtures-requirements.txt`
//! (PyTorch, transformers 4.57.6, PEFT 0.17.1), then runs each
//! `crates/*/tests/parity/*/generate.py`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{run, workspace_root};

/// Every fixture generator, sorted.
fn generators(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let crates = root.join("crates");
    for krate in
        std::fs::read_dir(&crates).with_context(|| format!("listing {}", crates.display()))?
    {
        let parity = krate?.path().join("tests/parity");
        if !parity.is_dir() {
            continue;
        }
        for case in
            std::fs::read_dir(&parity).with_context(|| format!("listing {}", parity.display()))?
        {
            let script = case?.path().join("generate.py");
            if script.is_file() {
                found.push(script);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Installs the pinned stack and runs every generator.
///
/// # Errors
/// When the environment cannot be built or a generator fails.
pub fn fixtures() -> Result<()> {
    let root = workspace_root();
    let venv = root.join("target/fixtures-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "-r"])
        .arg(root.join("fixtures-requirements.txt")))?;
    let scripts = generators(&root)?;
    if scripts.is_empty() {
        bail!("no crates/*/tests/parity/*/generate.py found under {}", root.display());
    }
    for script in scripts {
        eprintln!("xtask: {}", script.strip_prefix(&root).unwrap_or(&script).display());
        // A fixed hash seed keeps set-ordered fields (PEFT's `target_modules`) stable.
        run(Command::new(&python).arg(&script).current_dir(&root).env("PYTHONHASHSEED", "0"))?;
    }
    Ok(())
}
