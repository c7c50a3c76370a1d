//! Span-level precision, recall and F1 for sequence labelling, as the Python `seqeval` package
//! (1.2.2) computes them in its default mode: `seqeval.metrics.f1_score`, `precision_score`,
//! `recall_score` and `classification_report` with `mode=None`, the conlleval-compatible
//! lenient chunking (not `mode="strict"`).
//!
//! A tag is `O` or `<prefix>-<type>` (`B-PER`, `I-LOC`); the prefix is the tag's first character
//! and the type what follows the first `-` after it (`_` when empty). The chunker is seqeval's
//! `get_entities`, rule for rule, so `B`/`I`/`O` (IOB1 and IOB2) and `E`/`S` (IOE, IOBES) are all
//! read as seqeval reads them: an `I-` after `O` or after another type starts a span, a change of
//! type ends one, `E-` and `S-` end one. Two spans match when type, start and end all agree.
//!
//! The scores follow `seqeval.metrics.sequence_labeling.precision_recall_fscore_support`:
//! precision `tp / predicted`, recall `tp / true`, F1 `2 p r / (p + r)`, each `0.0` where its
//! denominator is zero (seqeval's default `zero_division="warn"`); micro scores sum the counts
//! over types.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// A labelled span of tokens, as seqeval's `get_entities` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Span {
    /// The entity type (`PER` for `B-PER`), `_` for tags without a type.
    pub kind: String,
    /// Index of the first token.
    pub start: usize,
    /// Index of the last token, inclusive (as seqeval's `get_entities`).
    pub end: usize,
}

/// Precision, recall, F1 and support of one entity type, or of all types together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Prf {
    /// Correct predicted spans over predicted spans; `0.0` when nothing is predicted.
    pub precision: f64,
    /// Correct predicted spans over gold spans; `0.0` when there is no gold span.
    pub recall: f64,
    /// Harmonic mean of precision and recall; `0.0` when both are zero.
    pub f1: f64,
    /// Number of gold spans.
    pub support: usize,
}

impl Prf {
    /// Scores from the number of correct, predicted and gold spans.
    fn from_counts(correct: usize, predicted: usize, gold: usize) -> Self {
        let ratio = |num: usize, den: usize| if den == 0 { 0.0 } else { num as f64 / den as f64 };
        let precision = ratio(correct, predicted);
        let recall = ratio(correct, gold);
        let denom = precision + recall;
        let f1 = if denom == 0.0 { 0.0 } else { 2.0 * precision * recall / denom };
        Self { precision, recall, f1, support: gold }
    }
}

/// Span scores over a corpus: the micro average and one entry per entity type.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SpanScores {
    /// Counts summed over all types (seqeval's default `average="micro"`, the number reported
    /// as CoNLL F1).
    pub micro: Prf,
    /// Per type, for every type found in the gold or the predicted tags, ordered by name (the
    /// rows of `classification_report`).
    pub per_type: BTreeMap<String, Prf>,
}

/// Parses a tag into its prefix character and its type, as seqeval's `get_entities` does with
/// `suffix=False`: `tag[0]` and `tag[1:].split('-', maxsplit=1)[-1] or '_'`. An empty tag, on
/// which seqeval fails, reads as `O`.
fn parse_tag(tag: &str) -> (char, &str) {
    let mut chars = tag.chars();
    let Some(prefix) = chars.next() else {
        return ('O', "_");
    };
    let rest = chars.as_str();
    let kind = match rest.split_once('-') {
        Some((_, kind)) => kind,
        None => rest,
    };
    (prefix, if kind.is_empty() { "_" } else { kind })
}

/// seqeval's `end_of_chunk`: whether a span ended just before the current token.
fn end_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(prev_tag, 'E' | 'S')
        || (matches!(prev_tag, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag != 'O' && prev_tag != '.' && prev_type != kind)
}

/// seqeval's `start_of_chunk`: whether a span starts at the current token.
fn start_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev_tag, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != kind)
}

/// Runs seqeval's chunker over `tags` followed by one `O`, returning (type, start, end) with the
/// type borrowed from the tags.
fn chunks<'a>(tags: impl IntoIterator<Item = &'a str>) -> Vec<(&'a str, usize, usize)> {
    let mut prev_tag = 'O';
    let mut prev_type = "";
    let mut begin = 0;
    let mut found = Vec::new();
    for (i, tag) in tags.into_iter().chain(std::iter::once("O")).enumerate() {
        let (tag, kind) = parse_tag(tag);
        if end_of_chunk(prev_tag, tag, prev_type, kind) {
            // Never fires at i = 0, where the previous tag is the initial `O`.
            found.push((prev_type, begin, i.saturating_sub(1)));
        }
        if start_of_chunk(prev_tag, tag, prev_type, kind) {
            begin = i;
        }
        prev_tag = tag;
        prev_type = kind;
    }
    found
}

/// The spans of one tag sequence, in order, as seqeval's `get_entities(tags)`.
///
/// ```
/// use pet_core::metrics::{Span, extract_spans};
///
/// let spans = extract_spans(&["B-PER", "I-PER", "O", "I-LOC"]);
/// assert_eq!(spans, [
///     Span { kind: "PER".into(), start: 0, end: 1 },
///     Span { kind: "LOC".into(), start: 3, end: 3 },
/// ]);
/// ```
pub fn extract_spans<T: AsRef<str>>(tags: &[T]) -> Vec<Span> {
    chunks(tags.iter().map(AsRef::as_ref))
        .into_iter()
        .map(|(kind, start, end)| Span { kind: kind.to_owned(), start, end })
        .collect()
}

/// Span precision, recall and F1 of `predicted` against `gold`, one tag sequence per sentence,
/// as seqeval's `precision_score`, `recall_score`, `f1_score` (micro) and
/// `classification_report(output_dict=True)` (per type) in the default mode.
///
/// Like seqeval, the sentences are joined into one sequence with an `O` after each, so a span
/// never crosses a sentence boundary. seqeval raises when the shapes differ; here a sentence
/// shorter than its counterpart is padded with `O`, and a missing sentence counts as all `O`, so
/// extra predicted spans are false positives and gold spans without a prediction are misses.
pub fn span_scores<G: AsRef<str>, P: AsRef<str>>(
    gold: &[Vec<G>],
    predicted: &[Vec<P>],
) -> SpanScores {
    let sentences = gold.len().max(predicted.len());
    let mut gold_flat: Vec<&str> = Vec::new();
    let mut pred_flat: Vec<&str> = Vec::new();
    for s in 0..sentences {
        let g = gold.get(s).map_or(&[][..], Vec::as_slice);
        let p = predicted.get(s).map_or(&[][..], Vec::as_slice);
        let len = g.len().max(p.len());
        gold_flat.extend((0..len).map(|i| g.get(i).map_or("O", AsRef::as_ref)));
        pred_flat.extend((0..len).map(|i| p.get(i).map_or("O", AsRef::as_ref)));
        gold_flat.push("O");
        pred_flat.push("O");
    }

    let by_type = |flat: Vec<&str>| {
        let mut map: BTreeMap<String, BTreeSet<(usize, usize)>> = BTreeMap::new();
        for (kind, start, end) in chunks(flat) {
            map.entry(kind.to_owned()).or_default().insert((start, end));
        }
        map
    };
    let gold_spans = by_type(gold_flat);
    let pred_spans = by_type(pred_flat);

    let empty = BTreeSet::new();
    let kinds: BTreeSet<&String> = gold_spans.keys().chain(pred_spans.keys()).collect();
    let (mut correct_sum, mut predicted_sum, mut gold_sum) = (0, 0, 0);
    let mut per_type = BTreeMap::new();
    for kind in kinds {
        let g = gold_spans.get(kind).unwrap_or(&empty);
        let p = pred_spans.get(kind).unwrap_or(&empty);
        let correct = g.intersection(p).count();
        correct_sum += correct;
        predicted_sum += p.len();
        gold_sum += g.len();
        per_type.insert(kind.clone(), Prf::from_counts(correct, p.len(), g.len()));
    }
    SpanScores { micro: Prf::from_counts(correct_sum, predicted_sum, gold_sum), per_type }
}

#[cfg(test)]
mod tests {
    use super::*;

    // References computed with seqeval 1.2.2:
    //   from seqeval.metrics import precision_score, recall_score, f1_score, classification_report
    //   from seqeval.metrics.sequence_labeling import get_entities

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() <= 1e-12, "expected {expected}, got {actual}");
    }

    fn spans(tags: &[&str]) -> Vec<(String, usize, usize)> {
        extract_spans(tags).into_iter().map(|s| (s.kind, s.start, s.end)).collect()
    }

    fn expected(list: &[(&str, usize, usize)]) -> Vec<(String, usize, usize)> {
        list.iter().map(|&(k, s, e)| (k.to_owned(), s, e)).collect()
    }

    fn sentences(list: &[&[&str]]) -> Vec<Vec<String>> {
        list.iter().map(|s| s.iter().map(|t| (*t).to_owned()).collect()).collect()
    }

    fn assert_prf(actual: &Prf, precision: f64, recall: f64, f1: f64, support: usize) {
        assert_close(actual.precision, precision);
        assert_close(actual.recall, recall);
        assert_close(actual.f1, f1);
        assert_eq!(actual.support, support);
    }

    #[test]
    fn extract_spans_starts_a_span_at_an_i_tag_without_b() {
        // get_entities(['O','I-PER','I-PER','O']) == [('PER', 1, 2)]
        assert_eq!(spans(&["O", "I-PER", "I-PER", "O"]), expected(&[("PER", 1, 2)]));
        // get_entities(['I-PER']) == [('PER', 0, 0)]
        assert_eq!(spans(&["I-PER"]), expected(&[("PER", 0, 0)]));
    }

    #[test]
    fn extract_spans_splits_adjacent_spans_of_different_types() {
        // get_entities(['B-PER','I-LOC','B-ORG','I-ORG','I-PER','O'])
        //   == [('PER', 0, 0), ('LOC', 1, 1), ('ORG', 2, 3), ('PER', 4, 4)]
        assert_eq!(
            spans(&["B-PER", "I-LOC", "B-ORG", "I-ORG", "I-PER", "O"]),
            expected(&[("PER", 0, 0), ("LOC", 1, 1), ("ORG", 2, 3), ("PER", 4, 4)])
        );
        // get_entities(['B-PER','I-PER','I-LOC','I-LOC']) == [('PER', 0, 1), ('LOC', 2, 3)]
        assert_eq!(
            spans(&["B-PER", "I-PER", "I-LOC", "I-LOC"]),
            expected(&[("PER", 0, 1), ("LOC", 2, 3)])
        );
    }

    #[test]
    fn extract_spans_splits_at_a_b_tag_of_the_same_type() {
        // get_entities(['B-PER','B-PER','I-PER']) == [('PER', 0, 0), ('PER', 1, 2)]
        assert_eq!(spans(&["B-PER", "B-PER", "I-PER"]), expected(&[("PER", 0, 0), ("PER", 1, 2)]));
    }

    #[test]
    fn extract_spans_closes_a_span_at_the_end_of_the_sequence() {
        // get_entities(['O','B-LOC','I-LOC']) == [('LOC', 1, 2)]
        assert_eq!(spans(&["O", "B-LOC", "I-LOC"]), expected(&[("LOC", 1, 2)]));
    }

    #[test]
    fn extract_spans_reads_e_and_s_tags_as_seqeval_does() {
        // get_entities(['S-PER','B-LOC','I-LOC','E-LOC','E-LOC','S-ORG','I-ORG','O','E-MISC'])
        //   == [('PER', 0, 0), ('LOC', 1, 3), ('LOC', 4, 4), ('ORG', 5, 5), ('ORG', 6, 6),
        //       ('MISC', 8, 8)]
        assert_eq!(
            spans(&["S-PER", "B-LOC", "I-LOC", "E-LOC", "E-LOC", "S-ORG", "I-ORG", "O", "E-MISC"]),
            expected(&[
                ("PER", 0, 0),
                ("LOC", 1, 3),
                ("LOC", 4, 4),
                ("ORG", 5, 5),
                ("ORG", 6, 6),
                ("MISC", 8, 8)
            ])
        );
    }

    #[test]
    fn extract_spans_parses_untyped_and_unusual_tags_as_seqeval_does() {
        // get_entities(['B','I','O','I','B-X','X-Y'])
        //   == [('_', 0, 1), ('_', 3, 3), ('X', 4, 4), ('Y', 5, 5)]
        assert_eq!(
            spans(&["B", "I", "O", "I", "B-X", "X-Y"]),
            expected(&[("_", 0, 1), ("_", 3, 3), ("X", 4, 4), ("Y", 5, 5)])
        );
        // get_entities(['B-ORG-X','I-ORG-X','BPER','IPER']) == [('ORG-X', 0, 1), ('PER', 2, 3)]
        assert_eq!(
            spans(&["B-ORG-X", "I-ORG-X", "BPER", "IPER"]),
            expected(&[("ORG-X", 0, 1), ("PER", 2, 3)])
        );
        // get_entities([]) == []
        assert_eq!(spans(&[]), expected(&[]));
    }

    #[test]
    fn span_scores_match_an_i_started_span_with_a_b_started_one() {
        // f1_score([['O','I-PER','I-PER','O']], [['O','B-PER','I-PER','O']]) == 1.0
        let gold = sentences(&[&["O", "I-PER", "I-PER", "O"]]);
        let pred = sentences(&[&["O", "B-PER", "I-PER", "O"]]);
        let scores = span_scores(&gold, &pred);
        assert_prf(&scores.micro, 1.0, 1.0, 1.0, 1);
    }

    #[test]
    fn span_scores_of_adjacent_spans_of_different_types() {
        // t = [['B-PER','B-LOC','B-ORG']]; p = [['B-PER','I-PER','B-ORG']]
        // precision_score(t, p) == 0.5; recall_score(t, p) == 0.3333333333333333;
        // f1_score(t, p) == 0.4; classification_report(t, p, output_dict=True):
        //   LOC 0/0/0 support 1, ORG 1/1/1 support 1, PER 0/0/0 support 1
        let gold = sentences(&[&["B-PER", "B-LOC", "B-ORG"]]);
        let pred = sentences(&[&["B-PER", "I-PER", "B-ORG"]]);
        let scores = span_scores(&gold, &pred);
        assert_prf(&scores.micro, 0.5, 0.3333333333333333, 0.4, 3);
        assert_eq!(scores.per_type.len(), 3);
        assert_prf(&scores.per_type["LOC"], 0.0, 0.0, 0.0, 1);
        assert_prf(&scores.per_type["ORG"], 1.0, 1.0, 1.0, 1);
        assert_prf(&scores.per_type["PER"], 0.0, 0.0, 0.0, 1);

        // t = [['B-PER','B-LOC','I-LOC','B-ORG']]; p = [['B-PER','I-LOC','I-LOC','B-ORG']]
        // f1_score(t, p) == 1.0
        let gold = sentences(&[&["B-PER", "B-LOC", "I-LOC", "B-ORG"]]);
        let pred = sentences(&[&["B-PER", "I-LOC", "I-LOC", "B-ORG"]]);
        assert_prf(&span_scores(&gold, &pred).micro, 1.0, 1.0, 1.0, 3);
    }

    #[test]
    fn span_scores_do_not_join_a_span_at_sentence_end_with_the_next_sentence() {
        // t = [['O','B-LOC','I-LOC'],['I-LOC','O']]; p = [['O','B-LOC','I-LOC'],['O','O']]
        // precision_score(t, p) == 1.0; recall_score(t, p) == 0.5;
        // f1_score(t, p) == 0.6666666666666666; report LOC support 2
        let gold = sentences(&[&["O", "B-LOC", "I-LOC"], &["I-LOC", "O"]]);
        let pred = sentences(&[&["O", "B-LOC", "I-LOC"], &["O", "O"]]);
        let scores = span_scores(&gold, &pred);
        assert_prf(&scores.micro, 1.0, 0.5, 0.6666666666666666, 2);
        assert_prf(&scores.per_type["LOC"], 1.0, 0.5, 0.6666666666666666, 2);
    }

    #[test]
    fn span_scores_give_zero_to_a_type_never_predicted() {
        // t = [['B-PER','I-PER','O','B-LOC','O','B-MISC','I-MISC'],
        //      ['O','B-ORG','I-ORG','I-ORG','O','B-PER'], ['B-MISC','O','O','B-LOC','I-LOC'],
        //      ['O','O']]
        // p = [['B-PER','I-PER','O','B-LOC','O','O','O'], ['O','B-ORG','I-ORG','O','O','B-PER'],
        //      ['O','O','B-ORG','I-LOC','I-LOC'], ['B-PER','O']]
        // precision_score, recall_score, f1_score (t, p) == 0.5714285714285714 each;
        // classification_report(t, p, output_dict=True):
        //   LOC  1.0 1.0 1.0 support 2;  MISC 0.0 0.0 0.0 support 2;
        //   ORG  0.0 0.0 0.0 support 1;  PER  0.6666666666666666 1.0 0.8 support 2;
        //   micro avg 0.5714285714285714 x3 support 7
        let gold = sentences(&[
            &["B-PER", "I-PER", "O", "B-LOC", "O", "B-MISC", "I-MISC"],
            &["O", "B-ORG", "I-ORG", "I-ORG", "O", "B-PER"],
            &["B-MISC", "O", "O", "B-LOC", "I-LOC"],
            &["O", "O"],
        ]);
        let pred = sentences(&[
            &["B-PER", "I-PER", "O", "B-LOC", "O", "O", "O"],
            &["O", "B-ORG", "I-ORG", "O", "O", "B-PER"],
            &["O", "O", "B-ORG", "I-LOC", "I-LOC"],
            &["B-PER", "O"],
        ]);
        let scores = span_scores(&gold, &pred);
        let micro = 0.5714285714285714;
        assert_prf(&scores.micro, micro, micro, micro, 7);
        let kinds: Vec<&str> = scores.per_type.keys().map(String::as_str).collect();
        assert_eq!(kinds, ["LOC", "MISC", "ORG", "PER"]);
        assert_prf(&scores.per_type["LOC"], 1.0, 1.0, 1.0, 2);
        assert_prf(&scores.per_type["MISC"], 0.0, 0.0, 0.0, 2);
        assert_prf(&scores.per_type["ORG"], 0.0, 0.0, 0.0, 1);
        assert_prf(&scores.per_type["PER"], 0.6666666666666666, 1.0, 0.8, 2);
    }

    #[test]
    fn span_scores_list_a_type_only_predicted_with_zero_support() {
        // t = [['O','O']]; p = [['B-PER','O']]: f1_score(t, p) == 0.0;
        // classification_report(t, p, output_dict=True)['PER'] == 0.0 0.0 0.0 support 0
        let gold = sentences(&[&["O", "O"]]);
        let pred = sentences(&[&["B-PER", "O"]]);
        let scores = span_scores(&gold, &pred);
        assert_prf(&scores.micro, 0.0, 0.0, 0.0, 0);
        assert_prf(&scores.per_type["PER"], 0.0, 0.0, 0.0, 0);
    }

    #[test]
    fn span_scores_without_any_span_are_zero() {
        // f1_score([['O','O']], [['O','O']]) == 0.0 (precision and recall 0.0 as well)
        let gold = sentences(&[&["O", "O"]]);
        let scores = span_scores(&gold, &gold);
        assert_prf(&scores.micro, 0.0, 0.0, 0.0, 0);
        assert!(scores.per_type.is_empty());
    }

    #[test]
    fn span_scores_of_iobes_tags() {
        // f1_score([['S-PER','B-LOC','E-LOC','O','S-ORG']], [['S-PER','B-LOC','I-LOC','O','B-ORG']])
        //   == 1.0 (precision, recall 1.0; support 3)
        let gold = sentences(&[&["S-PER", "B-LOC", "E-LOC", "O", "S-ORG"]]);
        let pred = sentences(&[&["S-PER", "B-LOC", "I-LOC", "O", "B-ORG"]]);
        assert_prf(&span_scores(&gold, &pred).micro, 1.0, 1.0, 1.0, 3);
    }

    #[test]
    fn span_scores_count_untyped_spans_under_underscore() {
        // classification_report([['B','I','O','B-X']], [['B','I','O','I-X']], output_dict=True)
        //   has rows 'X' and '_', each 1.0 1.0 1.0 support 1
        let gold = sentences(&[&["B", "I", "O", "B-X"]]);
        let pred = sentences(&[&["B", "I", "O", "I-X"]]);
        let scores = span_scores(&gold, &pred);
        assert_prf(&scores.micro, 1.0, 1.0, 1.0, 2);
        assert_prf(&scores.per_type["_"], 1.0, 1.0, 1.0, 1);
        assert_prf(&scores.per_type["X"], 1.0, 1.0, 1.0, 1);
    }

    #[test]
    fn span_scores_pad_mismatched_sentences_with_o() {
        // seqeval raises on mismatched shapes; ours equals seqeval on the O-padded input:
        // t = [['B-PER','I-PER','O','O'],['B-LOC']]; p = [['B-PER','I-PER','O','B-LOC'],['O']]
        // precision_score, recall_score, f1_score (t, p) == 0.5; LOC 0.0 support 1, PER 1.0
        let gold = sentences(&[&["B-PER", "I-PER"], &["B-LOC"]]);
        let pred = sentences(&[&["B-PER", "I-PER", "O", "B-LOC"]]);
        let scores = span_scores(&gold, &pred);
        assert_prf(&scores.micro, 0.5, 0.5, 0.5, 2);
        assert_prf(&scores.per_type["LOC"], 0.0, 0.0, 0.0, 1);
        assert_prf(&scores.per_type["PER"], 1.0, 1.0, 1.0, 1);
    }

    #[test]
    fn span_scores_accept_borrowed_tags() {
        let gold: Vec<Vec<&str>> = vec![vec!["B-PER", "O"]];
        let scores = span_scores(&gold, &gold);
        assert_prf(&scores.micro, 1.0, 1.0, 1.0, 1);
    }
}
