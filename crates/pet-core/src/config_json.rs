//! Reading a Hugging Face `config.json` into a typed config, naming the field a wrong value sits
//! at. Every domain crate reads its configs through [`read_json_config`] and names the file when
//! it reports the error (`at_config` of its error type).

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{PetError, Result};

/// Reads the JSON config at `path` as `T`. A value of the wrong type or range at a known field
/// (`"hidden_size": -1`) is [`PetError::InvalidConfig`] naming the field's path; malformed JSON
/// or a missing field is [`PetError::Format`] naming the file and position.
///
/// # Errors
/// As above, or [`PetError::Io`] when the file cannot be read.
pub fn read_json_config<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| PetError::io(path, e))?;
    parse_json_config(path, &text)
}

/// The JSON config `text` as `T`, as [`read_json_config`] reads the file `path`.
///
/// # Errors
/// As [`read_json_config`].
pub fn parse_json_config<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data if field != "." => {
                PetError::InvalidConfig { field, reason: inner.to_string() }
            }
            _ => PetError::format(path, inner),
        }
    })?;
    deserializer.end().map_err(|e| PetError::format(path, e))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Sizes {
        hidden_size: usize,
    }

    #[test]
    fn a_wrong_value_names_its_field_and_bad_json_the_file() {
        let path = Path::new("config.json");
        let err = parse_json_config::<Sizes>(path, r#"{"hidden_size": -1}"#).expect_err("-1");
        assert!(
            matches!(&err, PetError::InvalidConfig { field, .. } if field == "hidden_size"),
            "{err}"
        );
        let err = parse_json_config::<Sizes>(path, "{").expect_err("truncated");
        assert!(matches!(err, PetError::Format { .. }), "{err}");
        let sizes = parse_json_config::<Sizes>(path, r#"{"hidden_size": 4}"#).expect("fine");
        assert_eq!(sizes.hidden_size, 4);
    }
}
