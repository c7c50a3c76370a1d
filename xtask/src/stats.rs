//! Summary statistics of repeated measurements: mean and sample standard deviation (seeds of
//! the study), median with minimum and maximum (repeats of the speed table).

/// Mean and sample standard deviation (`n - 1` in the denominator, as `numpy.std(ddof=1)`);
/// the deviation is 0 for a single value.
pub fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some((mean, 0.0));
    }
    let squares = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
    Some((mean, (squares / (n - 1) as f64).sqrt()))
}

/// Median, minimum and maximum.
pub fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    Some((median, sorted[0], sorted[n - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_min_max() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(spread(&[4.0, 1.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn std_is_the_sample_deviation() {
        // numpy.std([0.9, 0.92, 0.94], ddof=1) = 0.02
        let (mean, std) = mean_std(&[0.9, 0.92, 0.94]).expect("values");
        assert!((mean - 0.92).abs() < 1e-12, "{mean}");
        assert!((std - 0.02).abs() < 1e-12, "{std}");
        assert_eq!(mean_std(&[0.5]), Some((0.5, 0.0)));
        assert_eq!(mean_std(&[]), None);
    }
}
