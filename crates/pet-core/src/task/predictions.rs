//! Where [`Task::predict`](super::Task::predict) sends its predictions: to the receiver as each
//! batch is run, so predicting a file holds one batch of rows and their predictions at a time,
//! however long the file (`pet predict` writes each line to its output as it comes).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::PetError;

/// Receives the predictions of a task, one JSON value per prediction, in input order.
pub trait Predictions {
    /// Takes the next prediction.
    ///
    /// # Errors
    /// When the prediction cannot be kept (an output that cannot be written); predicting stops
    /// with this error.
    fn push(&mut self, prediction: Value) -> Result<(), PetError>;
}

/// Keeps every prediction in memory (tests, small inputs, library users who want the values).
impl Predictions for Vec<Value> {
    fn push(&mut self, prediction: Value) -> Result<(), PetError> {
        Vec::push(self, prediction);
        Ok(())
    }
}

/// Writes each prediction as one line of JSON to a file as it comes (JSON Lines).
#[derive(Debug)]
pub struct JsonLinesFile {
    out: BufWriter<File>,
    path: PathBuf,
}

impl JsonLinesFile {
    /// A new (truncated) file at `path`; write to a staged path ([`crate::output::Staged`]) so
    /// that a failed run leaves no partial file at the output.
    ///
    /// # Errors
    /// [`PetError::Io`] naming `path` when it cannot be created.
    pub fn create(path: &Path) -> Result<Self, PetError> {
        let file = File::create(path).map_err(|e| PetError::io(path, e))?;
        Ok(Self { out: BufWriter::new(file), path: path.to_path_buf() })
    }

    /// Flushes every line to the file.
    ///
    /// # Errors
    /// [`PetError::Io`] naming the file when it cannot be written.
    pub fn finish(mut self) -> Result<(), PetError> {
        self.out.flush().map_err(|e| PetError::io(&self.path, e))
    }
}

impl Predictions for JsonLinesFile {
    fn push(&mut self, prediction: Value) -> Result<(), PetError> {
        serde_json::to_writer(&mut self.out, &prediction)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| PetError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_vector_keeps_the_predictions_in_order() {
        let mut kept: Vec<Value> = Vec::new();
        let sink: &mut dyn Predictions = &mut kept;
        sink.push(json!(1)).expect("push");
        sink.push(json!({"label": "b"})).expect("push");
        assert_eq!(kept, vec![json!(1), json!({"label": "b"})]);
    }

    #[test]
    fn a_json_lines_file_holds_one_line_per_prediction() {
        let dir = crate::testing::TempDir::new("json-lines");
        let path = dir.path().join("out.jsonl");
        let mut file = JsonLinesFile::create(&path).expect("create");
        file.push(json!({"label": "a", "logits": [1.5, -2.0]})).expect("push");
        file.push(json!("x\ny")).expect("push");
        file.finish().expect("finish");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "{\"label\":\"a\",\"logits\":[1.5,-2.0]}\n\"x\\ny\"\n");
    }
}
