//! Value parsers of the numeric flags, shared by every command (`#[arg(value_parser =
//! args::count)]`), so that a bad number is refused by the command line, naming the flag,
//! before anything loads. Flags that take them also set `allow_negative_numbers`, so that
//! `--lr -1` reaches the parser instead of being read as an unknown flag.

/// A count: batch sizes, lengths, epochs, steps, subsets; a whole number of at least 1.
///
/// # Errors
/// A message for clap when `text` is not such a number.
pub fn count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<i128>() {
        Ok(n) if n >= 1 => {
            usize::try_from(n).map_err(|_| format!("must be at most {}", usize::MAX))
        }
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err("expected a whole number of at least 1".into()),
    }
}

/// A rate: finite and greater than 0 (learning rates).
///
/// # Errors
/// A message for clap when `text` is not such a number.
pub fn positive(text: &str) -> Result<f64, String> {
    let value = number(text)?;
    match value > 0.0 {
        true => Ok(value),
        false => Err("must be a finite number greater than 0".into()),
    }
}

/// A weight: finite and at least 0 (weight decay).
///
/// # Errors
/// A message for clap when `text` is not such a number.
pub fn non_negative(text: &str) -> Result<f64, String> {
    let value = number(text)?;
    match value >= 0.0 {
        true => Ok(value),
        false => Err("must be a finite number of at least 0".into()),
    }
}

fn number(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err("must be a finite number (not NaN or infinite)".into()),
        Err(_) => Err("expected a finite number, such as 1e-3".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_a_whole_number_of_at_least_one() {
        assert_eq!(count("1"), Ok(1));
        assert_eq!(count("512"), Ok(512));
        for bad in ["0", "-3", "1.5", "", "many", "99999999999999999999999999"] {
            assert!(count(bad).is_err(), "{bad}");
        }
        assert_eq!(count("-1"), Err("must be at least 1".into()));
    }

    #[test]
    fn rates_are_finite_and_positive_weights_finite_and_not_negative() {
        assert_eq!(positive("1e-3"), Ok(1e-3));
        assert_eq!(non_negative("0"), Ok(0.0));
        for bad in ["0", "-1", "nan", "NaN", "inf", "-inf", "1e400", "x"] {
            assert!(positive(bad).is_err(), "{bad}");
        }
        for bad in ["-0.1", "nan", "inf", "x"] {
            assert!(non_negative(bad).is_err(), "{bad}");
        }
        assert!(positive("nan").is_err_and(|e| e.contains("finite")));
    }
}
