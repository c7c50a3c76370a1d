//! Extractive question answering scores, as the official SQuAD v1.1 script
//! (`evaluate-v1.1.py`) computes them: exact match and token-level F1 of normalized answers,
//! each the maximum over the gold answers of a question, averaged over the questions and
//! reported in percent.
//!
//! Normalization is the script's `normalize_answer`: lowercase, remove ASCII punctuation
//! (`string.punctuation`), replace the whole words `a`, `an`, `the` by a space, collapse
//! whitespace. Python's Unicode semantics are kept: lowercasing is full Unicode lowercasing,
//! whitespace is `str.split()`'s (which includes U+001C to U+001F), and a word for the article
//! rule is a run of alphanumeric characters, as the `\b` of Python's `re`. The one known
//! difference: Rust counts the marks with the Unicode `Other_Alphabetic` property (Indic vowel
//! signs, circled letters) as alphanumeric and Python does not, which matters only for such a
//! mark written directly against an article.

use std::collections::HashMap;

use serde::Serialize;

/// Aggregate SQuAD scores over a set of questions, in percent, as the script's `evaluate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct SquadScores {
    /// Percentage of questions whose normalized prediction equals a normalized gold answer.
    pub exact_match: f64,
    /// Mean over questions of the best token F1 against any gold answer, in percent.
    pub f1: f64,
    /// Number of questions scored.
    pub total: usize,
}

/// Python's `str.isspace`: Unicode `White_Space` plus the separators U+001C to U+001F.
fn is_py_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no argument: runs of whitespace separate, empty pieces dropped.
fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_whitespace).filter(|t| !t.is_empty())
}

/// The script's `normalize_answer`: lowercase, drop punctuation, drop articles, collapse
/// whitespace.
///
/// ```
/// use pet_core::metrics::squad::normalize_answer;
///
/// assert_eq!(normalize_answer("The  Quick, brown fox!"), "quick brown fox");
/// ```
pub fn normalize_answer(s: &str) -> String {
    let lowered = s.to_lowercase();
    let no_punct: String = lowered.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    // re.sub(r'\b(a|an|the)\b', ' ', text): replace every maximal word that is an article.
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut no_articles = String::with_capacity(no_punct.len());
    let mut rest = no_punct.as_str();
    while let Some(first) = rest.chars().next() {
        let in_word = is_word(first);
        let run_len = rest.find(|c: char| is_word(c) != in_word).unwrap_or(rest.len());
        let (run, tail) = rest.split_at(run_len);
        if in_word && matches!(run, "a" | "an" | "the") {
            no_articles.push(' ');
        } else {
            no_articles.push_str(run);
        }
        rest = tail;
    }
    py_split(&no_articles).collect::<Vec<_>>().join(" ")
}

/// Token F1 of one normalized prediction against one normalized gold answer, as the script's
/// `f1_score`.
fn token_f1(prediction: &[&str], ground_truth: &[&str]) -> f64 {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for token in prediction {
        *counts.entry(token).or_default() += 1;
    }
    // Multiset intersection: each gold token consumes one matching predicted token.
    let mut num_same = 0usize;
    for token in ground_truth {
        if let Some(count) = counts.get_mut(token)
            && *count > 0
        {
            *count -= 1;
            num_same += 1;
        }
    }
    if num_same == 0 {
        return 0.0;
    }
    let precision = num_same as f64 / prediction.len() as f64;
    let recall = num_same as f64 / ground_truth.len() as f64;
    (2.0 * precision * recall) / (precision + recall)
}

/// `1.0` when the normalized prediction equals a normalized gold answer, else `0.0`: the
/// script's `metric_max_over_ground_truths(exact_match_score, ...)`.
///
/// Two answers that both normalize to the empty string match (as in the script). Returns `0.0`
/// when there is no gold answer (the script fails on `max([])`).
pub fn exact_match<S: AsRef<str>>(prediction: &str, ground_truths: &[S]) -> f64 {
    let prediction = normalize_answer(prediction);
    let hit = ground_truths.iter().any(|truth| normalize_answer(truth.as_ref()) == prediction);
    if hit { 1.0 } else { 0.0 }
}

/// Best token F1 of the prediction against any gold answer: the script's
/// `metric_max_over_ground_truths(f1_score, ...)`, in `[0, 1]`.
///
/// Tokens are the whitespace-separated words of the normalized answers, counted as multisets.
/// No common token gives `0.0`, so two answers that normalize to the empty string score `0.0`
/// here while their exact match is `1.0` (as in the script). Returns `0.0` when there is no gold
/// answer (the script fails on `max([])`).
pub fn f1<S: AsRef<str>>(prediction: &str, ground_truths: &[S]) -> f64 {
    let prediction = normalize_answer(prediction);
    let prediction_tokens: Vec<&str> = py_split(&prediction).collect();
    ground_truths
        .iter()
        .map(|truth| {
            let truth = normalize_answer(truth.as_ref());
            let truth_tokens: Vec<&str> = py_split(&truth).collect();
            token_f1(&prediction_tokens, &truth_tokens)
        })
        .fold(0.0, f64::max)
}

/// Exact match and F1 in percent over questions, as the script's `evaluate`:
/// `100 * sum(score) / total` with `total = ground_truths.len()`.
///
/// `predictions[i]` answers the question whose gold answers are `ground_truths[i]`. A question
/// without a prediction (`i >= predictions.len()`) scores 0, as the script scores an unanswered
/// question; predictions beyond the questions are ignored. Returns zeros when there is no
/// question (the script divides by zero).
pub fn evaluate<P: AsRef<str>, G: AsRef<str>>(
    predictions: &[P],
    ground_truths: &[Vec<G>],
) -> SquadScores {
    let total = ground_truths.len();
    if total == 0 {
        return SquadScores::default();
    }
    let (mut em_sum, mut f1_sum) = (0.0, 0.0);
    for (prediction, truths) in predictions.iter().zip(ground_truths) {
        em_sum += exact_match(prediction.as_ref(), truths);
        f1_sum += f1(prediction.as_ref(), truths);
    }
    SquadScores {
        exact_match: 100.0 * em_sum / total as f64,
        f1: 100.0 * f1_sum / total as f64,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // References computed with the functions of the official evaluate-v1.1.py, re-typed in
    // Python 3.11 (normalize_answer, f1_score, exact_match_score,
    // metric_max_over_ground_truths, evaluate) as `from squad import *`.

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() <= 1e-12, "expected {expected}, got {actual}");
    }

    #[test]
    fn normalize_answer_lowercases_and_drops_punctuation_and_articles() {
        // normalize_answer('The  Quick, brown fox!') == 'quick brown fox'
        assert_eq!(normalize_answer("The  Quick, brown fox!"), "quick brown fox");
        // normalize_answer('An apple a day keeps the doctor away.') == 'apple day keeps doctor away'
        assert_eq!(
            normalize_answer("An apple a day keeps the doctor away."),
            "apple day keeps doctor away"
        );
        // normalize_answer('The.') == ''
        assert_eq!(normalize_answer("The."), "");
        // normalize_answer('  ') == ''
        assert_eq!(normalize_answer("  "), "");
    }

    #[test]
    fn normalize_answer_keeps_articles_inside_words() {
        // normalize_answer('theater another thea') == 'theater another thea'
        assert_eq!(normalize_answer("theater another thea"), "theater another thea");
        // normalize_answer('a1 an_ the\tend\x1cx') == 'a1 end x'
        assert_eq!(normalize_answer("a1 an_ the\tend\u{1c}x"), "a1 end x");
    }

    #[test]
    fn normalize_answer_removes_punctuation_before_articles() {
        // normalize_answer('a-b the-end') == 'ab theend'
        assert_eq!(normalize_answer("a-b the-end"), "ab theend");
        // normalize_answer("l'a") == 'la'
        assert_eq!(normalize_answer("l'a"), "la");
        // normalize_answer("ÉCOLE's élan") == 'écoles élan'
        assert_eq!(normalize_answer("ÉCOLE's élan"), "écoles élan");
    }

    #[test]
    fn normalize_answer_follows_python_unicode_rules() {
        // normalize_answer('Über  die BRÜCKE—the bridge') == 'über die brücke— bridge'
        assert_eq!(normalize_answer("Über  die BRÜCKE—the bridge"), "über die brücke— bridge");
        // normalize_answer('naïve a café') == 'naïve café'
        assert_eq!(normalize_answer("naïve a café"), "naïve café");
        // normalize_answer('ΣΑΣ') == 'σας' (final sigma)
        assert_eq!(normalize_answer("ΣΑΣ"), "σας");
    }

    #[test]
    fn python_whitespace_includes_the_information_separators() {
        // ''.join(chr(c) for c in range(0x110000) if chr(c).isspace())
        let python: Vec<char> = "\t\n\u{b}\u{c}\r\u{1c}\u{1d}\u{1e}\u{1f} \u{85}\u{a0}\u{1680}\
             \u{2000}\u{2001}\u{2002}\u{2003}\u{2004}\u{2005}\u{2006}\u{2007}\u{2008}\u{2009}\
             \u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}"
            .chars()
            .collect();
        let ours: Vec<char> = (0..=0x10ffff_u32)
            .filter_map(char::from_u32)
            .filter(|&c| is_py_whitespace(c))
            .collect();
        assert_eq!(ours, python);
    }

    #[test]
    fn exact_match_ignores_articles_and_punctuation() {
        // metric_max_over_ground_truths(exact_match_score, 'the Eiffel Tower.',
        //                               ['Eiffel Tower', 'tower']) == True
        assert_eq!(exact_match("the Eiffel Tower.", &["Eiffel Tower", "tower"]), 1.0);
        // metric_max_over_ground_truths(exact_match_score, 'Eiffel', ['Eiffel Tower', 'tower'])
        //   == False
        assert_eq!(exact_match("Eiffel", &["Eiffel Tower", "tower"]), 0.0);
    }

    #[test]
    fn f1_takes_the_best_of_several_ground_truths() {
        // [f1_score('in the year 1850 roughly', g) for g in ['1850', 'the year 1850', 'around 1850']]
        //   == [0.4, 0.6666666666666666, 0.3333333333333333]
        // metric_max_over_ground_truths(f1_score, 'in the year 1850 roughly',
        //   ['1850', 'the year 1850', 'around 1850']) == 0.6666666666666666
        let prediction = "in the year 1850 roughly";
        assert_close(f1(prediction, &["1850"]), 0.4);
        assert_close(f1(prediction, &["the year 1850"]), 0.6666666666666666);
        assert_close(f1(prediction, &["around 1850"]), 0.3333333333333333);
        assert_close(f1(prediction, &["1850", "the year 1850", "around 1850"]), 0.6666666666666666);
    }

    #[test]
    fn f1_counts_repeated_tokens_as_a_multiset() {
        // f1_score('paris paris france', 'Paris, France, France') == 0.6666666666666666
        assert_close(f1("paris paris france", &["Paris, France, France"]), 0.6666666666666666);
        // f1_score('Denver Broncos won', 'the Denver Broncos') == 0.8
        assert_close(f1("Denver Broncos won", &["the Denver Broncos"]), 0.8);
        // f1_score('cat', 'dog') == 0
        assert_eq!(f1("cat", &["dog"]), 0.0);
    }

    #[test]
    fn answers_that_normalize_to_nothing_match_exactly_but_score_zero_f1() {
        // exact_match_score('the', 'A') == True; f1_score('the', 'A') == 0
        assert_eq!(exact_match("the", &["A"]), 1.0);
        assert_eq!(f1("the", &["A"]), 0.0);
    }

    #[test]
    fn scores_without_ground_truths_are_zero() {
        let none: [&str; 0] = [];
        assert_eq!(exact_match("x", &none), 0.0);
        assert_eq!(f1("x", &none), 0.0);
    }

    #[test]
    fn evaluate_reports_percentages_and_scores_unanswered_questions_zero() {
        // evaluate([{'id':'q1','answers':['Denver Broncos','The Denver Broncos']},
        //           {'id':'q2','answers':['Santa Clara, California',"Levi's Stadium"]},
        //           {'id':'q3','answers':['gold']}, {'id':'q4','answers':['1850']}],
        //          {'q1':'the Denver Broncos!','q2':"Levi's Stadium in Santa Clara",'q3':'golden'})
        //   == {'exact_match': 25.0, 'f1': 39.28571428571429}
        // (evaluate re-typed over a flat list of questions; q4 has no prediction)
        let ground_truths = vec![
            vec!["Denver Broncos", "The Denver Broncos"],
            vec!["Santa Clara, California", "Levi's Stadium"],
            vec!["gold"],
            vec!["1850"],
        ];
        let predictions = ["the Denver Broncos!", "Levi's Stadium in Santa Clara", "golden"];
        let scores = evaluate(&predictions, &ground_truths);
        assert_eq!(scores.exact_match, 25.0);
        assert_close(scores.f1, 39.28571428571429);
        assert_eq!(scores.total, 4);
    }

    #[test]
    fn evaluate_of_no_question_is_zero() {
        let none: Vec<Vec<String>> = Vec::new();
        assert_eq!(evaluate::<&str, String>(&[], &none), SquadScores::default());
    }
}
