//! Metrics as JSON lines, one object per step or epoch, flushed as written so that an
//! interrupted run keeps everything logged so far.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{PetError, Result};

/// A JSON-lines sink; [`MetricsLog::disabled`] drops every record.
#[derive(Debug)]
pub struct MetricsLog {
    sink: Option<(PathBuf, BufWriter<File>)>,
}

impl MetricsLog {
    /// A fresh log at `path`, replacing any file there: one log holds one run (`train_task`
    /// writes it into the run's staged output folder).
    ///
    /// # Errors
    /// [`PetError::Io`] when the file cannot be created.
    pub fn to_file(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| PetError::io(path, e))?;
        Ok(Self { sink: Some((path.to_path_buf(), BufWriter::new(file))) })
    }

    /// A log that keeps nothing.
    pub fn disabled() -> Self {
        Self { sink: None }
    }

    /// Appends one record.
    ///
    /// # Errors
    /// [`PetError::Io`] when the write fails.
    pub fn record(&mut self, value: &serde_json::Value) -> Result<()> {
        if let Some((path, writer)) = &mut self.sink {
            writeln!(writer, "{value}")
                .and_then(|_| writer.flush())
                .map_err(|e| PetError::io(path.clone(), e))?;
        }
        Ok(())
    }
}
