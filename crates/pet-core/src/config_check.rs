//! Checks of a config before anything of its sizes is allocated: its values (sizes of zero,
//! dropout outside `[0, 1)`, a non-positive epsilon, heads that do not divide the hidden size), and
//! its sizes against the header of the weights file it is loaded from ([`HeaderCheck`]), so that a
//! `hidden_size: 100000` beside a tiny `model.safetensors` is an error naming the field and the
//! key, not an attempt to allocate gigabytes followed by a shape mismatch.
//!
//! Every error is [`PetError::InvalidConfig`] naming the config field by its serialized name;
//! a loader that knows the config file adds its path.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::error::{PetError, Result};

/// `value` is at least 1.
///
/// # Errors
/// [`PetError::InvalidConfig`] naming `field` when it is 0.
pub fn positive(field: &str, value: usize) -> Result<()> {
    match value {
        0 => Err(PetError::config(field, "must be at least 1, found 0")),
        _ => Ok(()),
    }
}

/// `value` is a probability of dropping: finite, in `[0, 1)`.
///
/// # Errors
/// [`PetError::InvalidConfig`] naming `field` otherwise.
pub fn dropout(field: &str, value: f64) -> Result<()> {
    match (0.0..1.0).contains(&value) {
        true => Ok(()),
        false => Err(PetError::config(field, format!("must be in [0, 1), found {value}"))),
    }
}

/// `value` is finite and above 0 (a layer-norm epsilon, a scale).
///
/// # Errors
/// [`PetError::InvalidConfig`] naming `field` otherwise.
pub fn positive_finite(field: &str, value: f64) -> Result<()> {
    match value.is_finite() && value > 0.0 {
        true => Ok(()),
        false => Err(PetError::config(field, format!("must be finite and above 0, found {value}"))),
    }
}

/// `value` is finite (a scaling numerator such as `lora_alpha`).
///
/// # Errors
/// [`PetError::InvalidConfig`] naming `field` otherwise.
pub fn finite(field: &str, value: f64) -> Result<()> {
    match value.is_finite() {
        true => Ok(()),
        false => Err(PetError::config(field, format!("must be finite, found {value}"))),
    }
}

/// `divisor` (the value of `field`) is at least 1 and divides `value` (the value of `of`).
///
/// # Errors
/// [`PetError::InvalidConfig`] naming `field` otherwise.
pub fn divides(field: &str, divisor: usize, of: &str, value: usize) -> Result<()> {
    match divisor > 0 && value.is_multiple_of(divisor) {
        true => Ok(()),
        false => Err(PetError::config(field, format!("{divisor} does not divide {of} {value}"))),
    }
}

/// `value` (of `field`) is below `bound` (the value of `of`): an id inside a table.
///
/// # Errors
/// [`PetError::InvalidConfig`] naming `field` otherwise.
pub fn below(field: &str, value: usize, of: &str, bound: usize) -> Result<()> {
    match value < bound {
        true => Ok(()),
        false => Err(PetError::config(field, format!("{value} is not below {of} {bound}"))),
    }
}

/// One dimension a config gives a tensor: its size and the field it comes from.
pub type Dim<'a> = (usize, &'a str);

/// A config's sizes checked against the shapes a weights file's header holds, key by key, before
/// the model is built. Keys are the file's (Hugging Face's, `[out, in]` for linear weights), under
/// a key prefix (`bert.` in a task checkpoint); shapes are compared as the file holds them.
///
/// A backbone lists what its config implies, tensor by tensor, with the field each dimension
/// comes from; the first key the file lacks or holds with another size ends the check, so a
/// `num_hidden_layers: 1000` stops at the first absent layer.
#[derive(Debug)]
pub struct HeaderCheck<'a> {
    shapes: &'a BTreeMap<String, Vec<usize>>,
    file: &'a str,
    prefix: &'a str,
    checked: RefCell<Vec<String>>,
}

impl<'a> HeaderCheck<'a> {
    /// A check against `shapes` (a header's, by key) of the file named `file`, with keys under
    /// `prefix`.
    pub fn new(shapes: &'a BTreeMap<String, Vec<usize>>, file: &'a str, prefix: &'a str) -> Self {
        Self { shapes, file, prefix, checked: RefCell::new(Vec::new()) }
    }

    /// The file's shape of `key` (under the prefix), for a check whose dimension comes from
    /// several fields; `None` when the file lacks it.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.shapes.get(&format!("{}{key}", self.prefix)).map(Vec::as_slice)
    }

    /// The name of the checked file, for messages.
    pub fn file(&self) -> &str {
        self.file
    }

    /// The tensor `key` (under the prefix) has the dimensions `dims`. `origin` names the field
    /// that makes the tensor exist (`num_hidden_layers` for a layer's weights), or is empty for a
    /// tensor every model of the family has.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] naming the field of the first dimension that differs, or
    /// `origin` when the file lacks the key; [`PetError::MissingWeights`] when it lacks a key
    /// without an origin; [`PetError::ShapeMismatch`] when the file's tensor has another rank.
    pub fn tensor(&self, key: &str, origin: &str, dims: &[Dim<'_>]) -> Result<()> {
        let full = format!("{}{key}", self.prefix);
        let expected: Vec<usize> = dims.iter().map(|(size, _)| *size).collect();
        let Some(found) = self.shapes.get(&full) else {
            if origin.is_empty() {
                return Err(PetError::MissingWeights {
                    file: self.file.to_string(),
                    keys: vec![full],
                });
            }
            return Err(PetError::config(
                origin,
                format!("asks for `{full}`, which {} does not hold", self.file),
            ));
        };
        if found.len() != expected.len() {
            return Err(PetError::ShapeMismatch {
                path: format!("{}: {full}", self.file),
                expected,
                found: found.clone(),
            });
        }
        if let Some(((size, field), _)) = dims.iter().zip(found).find(|((size, _), f)| size != *f) {
            return Err(PetError::config(
                *field,
                format!(
                    "is {size}, but {}: `{full}` has shape {found:?}, not {expected:?}",
                    self.file
                ),
            ));
        }
        self.checked.borrow_mut().push(full);
        Ok(())
    }

    /// A linear layer `base` (`{base}.weight` `[d_out, d_in]` as PyTorch stores it, and
    /// `{base}.bias` `[d_out]`).
    ///
    /// # Errors
    /// As [`HeaderCheck::tensor`].
    pub fn linear(&self, base: &str, origin: &str, d_in: Dim<'_>, d_out: Dim<'_>) -> Result<()> {
        self.tensor(&format!("{base}.weight"), origin, &[d_out, d_in])?;
        self.tensor(&format!("{base}.bias"), origin, &[d_out])
    }

    /// A layer norm `base` (`{base}.weight` and `{base}.bias`, `[size]`).
    ///
    /// # Errors
    /// As [`HeaderCheck::tensor`].
    pub fn norm(&self, base: &str, origin: &str, size: Dim<'_>) -> Result<()> {
        self.tensor(&format!("{base}.weight"), origin, &[size])?;
        self.tensor(&format!("{base}.bias"), origin, &[size])
    }

    /// The keys checked so far, with the prefix (what a model of the config holds).
    pub fn checked(&self) -> Vec<String> {
        self.checked.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<()>) -> String {
        crate::testing::invalid_config(result).0
    }

    #[test]
    fn values_outside_their_range_name_the_field() {
        assert_eq!(field_of(positive("hidden_size", 0)), "hidden_size");
        for bad in [1.0, -0.1, f64::NAN, f64::INFINITY] {
            assert_eq!(field_of(dropout("hidden_dropout_prob", bad)), "hidden_dropout_prob");
        }
        for bad in [0.0, -1e-12, f64::NAN, f64::INFINITY] {
            assert_eq!(field_of(positive_finite("layer_norm_eps", bad)), "layer_norm_eps");
        }
        assert_eq!(field_of(finite("lora_alpha", f64::NAN)), "lora_alpha");
        assert_eq!(
            field_of(divides("num_attention_heads", 3, "hidden_size", 16)),
            "num_attention_heads"
        );
        assert_eq!(
            field_of(divides("num_attention_heads", 0, "hidden_size", 16)),
            "num_attention_heads"
        );
        assert_eq!(field_of(below("pad_token_id", 30, "vocab_size", 30)), "pad_token_id");
        assert!(positive("a", 1).is_ok() && dropout("a", 0.0).is_ok() && dropout("a", 0.5).is_ok());
        assert!(positive_finite("a", 1e-12).is_ok() && divides("a", 4, "b", 16).is_ok());
        assert!(below("a", 29, "b", 30).is_ok() && finite("a", -2.0).is_ok());
    }

    #[test]
    fn a_header_check_names_the_field_of_the_differing_dimension() {
        let shapes = BTreeMap::from([
            ("bert.emb.weight".to_string(), vec![30, 8]),
            ("bert.dense.weight".to_string(), vec![16, 8]),
            ("bert.dense.bias".to_string(), vec![16]),
        ]);
        let check = HeaderCheck::new(&shapes, "m/model.safetensors", "bert.");
        check.tensor("emb.weight", "", &[(30, "vocab_size"), (8, "hidden_size")]).expect("fits");
        check.linear("dense", "", (8, "hidden_size"), (16, "intermediate_size")).expect("fits");
        assert_eq!(check.checked(), ["bert.emb.weight", "bert.dense.weight", "bert.dense.bias"]);
        let err = check
            .tensor("emb.weight", "", &[(30, "vocab_size"), (100_000, "hidden_size")])
            .expect_err("hidden size");
        let text = err.to_string();
        assert!(matches!(&err, PetError::InvalidConfig { field, .. } if field == "hidden_size"));
        assert!(text.contains("m/model.safetensors") && text.contains("bert.emb.weight"), "{text}");
        assert!(text.contains("[30, 8]"), "the file's shape: {text}");
        let layers = check.tensor("layer.5.weight", "num_hidden_layers", &[(8, "hidden_size")]);
        assert_eq!(field_of(layers), "num_hidden_layers");
        let missing = check.tensor("pooler.weight", "", &[(8, "hidden_size")]);
        assert!(matches!(missing, Err(PetError::MissingWeights { .. })), "{missing:?}");
        let rank = check.tensor("dense.bias", "", &[(16, "a"), (1, "b")]);
        assert!(
            matches!(&rank, Err(PetError::ShapeMismatch { found, .. }) if found == &vec![16]),
            "{rank:?}"
        );
    }
}
