//! Single-label classification metrics: accuracy, macro F1 and the Matthews correlation
//! coefficient, computed as scikit-learn 1.x computes them.
//!
//! Labels are class indices. Every function scores the pairs `(predictions[i], labels[i])`;
//! scikit-learn raises when the two slices differ in length or are empty, these functions
//! instead score the first `min(predictions.len(), labels.len())` pairs and return `0.0` when
//! there are none.

use std::collections::BTreeMap;

/// Fraction of predictions equal to their label, as `sklearn.metrics.accuracy_score`.
///
/// Returns `0.0` when there is no pair to score (scikit-learn raises).
pub fn accuracy(predictions: &[usize], labels: &[usize]) -> f64 {
    let total = predictions.len().min(labels.len());
    if total == 0 {
        return 0.0;
    }
    let correct = predictions.iter().zip(labels).filter(|(p, l)| p == l).count();
    correct as f64 / total as f64
}

/// Unweighted mean over the classes `0..num_classes` of the per-class F1, as
/// `sklearn.metrics.f1_score(labels, predictions, average="macro", labels=range(num_classes))`.
///
/// The per-class F1 is `2 tp / (2 tp + fp + fn)`. A class that appears neither among the labels
/// nor among the predictions has an undefined F1; scikit-learn's default `zero_division="warn"`
/// sets it to `0.0` (and warns), and so does this function: such a class still counts in the
/// mean. Values `>= num_classes` belong to no scored class; like scikit-learn, a pair with its
/// label out of range only counts as a false positive of the predicted class, and a pair with
/// its prediction out of range only as a miss of the label's class.
///
/// Returns `0.0` when `num_classes` is zero or there is no pair to score.
pub fn macro_f1(predictions: &[usize], labels: &[usize], num_classes: usize) -> f64 {
    if num_classes == 0 || predictions.is_empty() || labels.is_empty() {
        return 0.0;
    }
    // Per class: true positives, predicted count, true count.
    let mut tp = vec![0u64; num_classes];
    let mut predicted = vec![0u64; num_classes];
    let mut actual = vec![0u64; num_classes];
    for (&p, &l) in predictions.iter().zip(labels) {
        if let Some(count) = predicted.get_mut(p) {
            *count += 1;
        }
        if let Some(count) = actual.get_mut(l) {
            *count += 1;
        }
        if p == l
            && let Some(count) = tp.get_mut(p)
        {
            *count += 1;
        }
    }
    let sum: f64 = (0..num_classes)
        .map(|c| {
            // scikit-learn: (1 + beta^2) tp / (beta^2 true_sum + pred_sum), zero when undefined.
            let denom = actual[c] as f64 + predicted[c] as f64;
            if denom == 0.0 { 0.0 } else { 2.0 * tp[c] as f64 / denom }
        })
        .sum();
    sum / num_classes as f64
}

/// Multiclass Matthews correlation coefficient, as `sklearn.metrics.matthews_corrcoef`.
///
/// With the confusion matrix `C` over the classes seen in either slice, `t` its row sums (true
/// counts), `p` its column sums (predicted counts), `c` its trace and `s` the number of samples:
/// `(c s - t.p) / sqrt((s^2 - p.p) (s^2 - t.t))`. When the denominator is zero (a constant
/// predictor, or constant labels) it returns `0.0`, as scikit-learn does. The binary case is the
/// usual `(tp tn - fp fn) / sqrt(...)`.
///
/// Returns `0.0` when there is no pair to score (scikit-learn raises).
pub fn matthews_corrcoef(predictions: &[usize], labels: &[usize]) -> f64 {
    // Per class seen: (true count, predicted count).
    let mut sums: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    let mut n_correct = 0u64;
    for (&p, &l) in predictions.iter().zip(labels) {
        sums.entry(l).or_default().0 += 1;
        sums.entry(p).or_default().1 += 1;
        if p == l {
            n_correct += 1;
        }
    }
    // Same float operations as scikit-learn, which holds the sums as float64.
    let n_samples: f64 = sums.values().map(|&(_, p)| p as f64).sum();
    let dot = |f: fn(&(u64, u64)) -> f64| -> f64 { sums.values().map(f).sum() };
    let t_dot_p = dot(|&(t, p)| t as f64 * p as f64);
    let p_dot_p = dot(|&(_, p)| p as f64 * p as f64);
    let t_dot_t = dot(|&(t, _)| t as f64 * t as f64);
    let cov_ytyp = n_correct as f64 * n_samples - t_dot_p;
    let cov_ypyp = n_samples * n_samples - p_dot_p;
    let cov_ytyt = n_samples * n_samples - t_dot_t;
    let cov_ypyp_ytyt = cov_ypyp * cov_ytyt;
    if cov_ypyp_ytyt == 0.0 { 0.0 } else { cov_ytyp / cov_ypyp_ytyt.sqrt() }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The references below were computed with scikit-learn 1.9.1. Note the argument order:
    // scikit-learn takes (y_true, y_pred), these functions take (predictions, labels).

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() <= 1e-12, "expected {expected}, got {actual}");
    }

    #[test]
    fn accuracy_is_the_fraction_of_exact_matches() {
        // accuracy_score([0,2,2,1,0,1,1], [0,1,2,1,0,2,1]) == 0.7142857142857143
        let acc = accuracy(&[0, 1, 2, 1, 0, 2, 1], &[0, 2, 2, 1, 0, 1, 1]);
        assert_close(acc, 0.7142857142857143);
        assert_close(acc, 5.0 / 7.0);
    }

    #[test]
    fn accuracy_of_all_wrong_predictions_is_zero() {
        // accuracy_score([1,1], [0,0]) == 0.0
        assert_eq!(accuracy(&[0, 0], &[1, 1]), 0.0);
    }

    #[test]
    fn accuracy_of_nothing_is_zero_instead_of_an_error() {
        // accuracy_score([], []) raises ValueError("Found empty input array ...").
        assert_eq!(accuracy(&[], &[]), 0.0);
    }

    #[test]
    fn accuracy_scores_only_the_paired_prefix_of_mismatched_slices() {
        // scikit-learn raises; we score [0, 1] against [0, 2]: 1/2.
        assert_eq!(accuracy(&[0, 1, 1, 1], &[0, 2]), 0.5);
    }

    #[test]
    fn macro_f1_counts_a_never_predicted_class_as_zero() {
        // f1_score([0,0,1,1,2,2], [0,0,1,1,1,1], average='macro', labels=range(3))
        //   == 0.5555555555555555   (class F1s: 1, 2/3, 0)
        let f1 = macro_f1(&[0, 0, 1, 1, 1, 1], &[0, 0, 1, 1, 2, 2], 3);
        assert_close(f1, 0.5555555555555555);
    }

    #[test]
    fn macro_f1_counts_a_class_absent_from_labels_and_predictions_as_zero() {
        // f1_score([0,1,0,1], [0,1,1,1], average='macro', labels=range(3))
        //   == 0.48888888888888893   (zero_division="warn" acts as 0 for class 2)
        let f1 = macro_f1(&[0, 1, 1, 1], &[0, 1, 0, 1], 3);
        assert_close(f1, 0.48888888888888893);
        // Without class 2 the mean is over two classes:
        // f1_score([0,1,0,1], [0,1,1,1], average='macro') == 0.7333333333333334
        assert_close(macro_f1(&[0, 1, 1, 1], &[0, 1, 0, 1], 2), 0.7333333333333334);
    }

    #[test]
    fn macro_f1_ignores_values_outside_the_scored_classes() {
        // f1_score([0,1,2,0], [0,5,2,1], average='macro', labels=range(3)) == 0.5555555555555555
        let f1 = macro_f1(&[0, 5, 2, 1], &[0, 1, 2, 0], 3);
        assert_close(f1, 0.5555555555555555);
        // f1_score([5,0], [0,0], average='macro', labels=range(2)) == 0.3333333333333333
        assert_close(macro_f1(&[0, 0], &[5, 0], 2), 0.3333333333333333);
    }

    #[test]
    fn macro_f1_matches_sklearn_on_a_four_class_case() {
        // f1_score([0,1,2,3,0,1,2,3,3,1], [0,2,2,3,1,1,0,3,2,1], average='macro',
        //          labels=range(4)) == 0.5916666666666666
        let f1 = macro_f1(&[0, 2, 2, 3, 1, 1, 0, 3, 2, 1], &[0, 1, 2, 3, 0, 1, 2, 3, 3, 1], 4);
        assert_close(f1, 0.5916666666666666);
    }

    #[test]
    fn macro_f1_matches_sklearn_on_a_ten_class_case() {
        // f1_score([0,1,2,3,4,5,6,7,8,9,9,8,7,6,5,4,3,2,1,0],
        //          [0,1,2,3,4,5,6,7,8,8,9,8,1,6,5,3,3,2,2,0],
        //          average='macro', labels=range(10)) == 0.79
        let labels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0];
        let predictions = [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 8, 1, 6, 5, 3, 3, 2, 2, 0];
        assert_close(macro_f1(&predictions, &labels, 10), 0.79);
    }

    #[test]
    fn macro_f1_of_zero_classes_is_zero() {
        assert_eq!(macro_f1(&[0], &[0], 0), 0.0);
    }

    #[test]
    fn matthews_corrcoef_of_a_constant_predictor_is_zero() {
        // matthews_corrcoef([0,1,2,1,0], [1,1,1,1,1]) == 0.0
        assert_eq!(matthews_corrcoef(&[1, 1, 1, 1, 1], &[0, 1, 2, 1, 0]), 0.0);
    }

    #[test]
    fn matthews_corrcoef_with_constant_labels_is_zero() {
        // matthews_corrcoef([1,1,1,1], [0,1,2,1]) == 0.0
        assert_eq!(matthews_corrcoef(&[0, 1, 2, 1], &[1, 1, 1, 1]), 0.0);
    }

    #[test]
    fn matthews_corrcoef_matches_sklearn_on_a_binary_case() {
        // matthews_corrcoef([1,1,1,0,0,0,1,0], [1,0,1,0,0,1,1,1]) == 0.2581988897471611
        let mcc = matthews_corrcoef(&[1, 0, 1, 0, 0, 1, 1, 1], &[1, 1, 1, 0, 0, 0, 1, 0]);
        assert_close(mcc, 0.2581988897471611);
    }

    #[test]
    fn matthews_corrcoef_matches_sklearn_on_a_multiclass_case() {
        // matthews_corrcoef([0,1,2,3,0,1,2,3,3,1], [0,2,2,3,1,1,0,3,2,1]) == 0.47297297297297297
        let mcc =
            matthews_corrcoef(&[0, 2, 2, 3, 1, 1, 0, 3, 2, 1], &[0, 1, 2, 3, 0, 1, 2, 3, 3, 1]);
        assert_close(mcc, 0.47297297297297297);
    }

    #[test]
    fn matthews_corrcoef_uses_only_the_classes_seen() {
        // matthews_corrcoef([0,7,7,3,3,0], [7,7,0,3,0,0]) == 0.26111648393354675
        let mcc = matthews_corrcoef(&[7, 7, 0, 3, 0, 0], &[0, 7, 7, 3, 3, 0]);
        assert_close(mcc, 0.26111648393354675);
    }

    #[test]
    fn matthews_corrcoef_is_one_when_perfect_and_minus_one_when_inverted() {
        // matthews_corrcoef([2,0,1,2], [2,0,1,2]) == 1.0
        assert_eq!(matthews_corrcoef(&[2, 0, 1, 2], &[2, 0, 1, 2]), 1.0);
        // matthews_corrcoef([0,1,0,1], [1,0,1,0]) == -1.0
        assert_eq!(matthews_corrcoef(&[1, 0, 1, 0], &[0, 1, 0, 1]), -1.0);
    }

    #[test]
    fn matthews_corrcoef_of_nothing_is_zero() {
        assert_eq!(matthews_corrcoef(&[], &[]), 0.0);
    }
}
