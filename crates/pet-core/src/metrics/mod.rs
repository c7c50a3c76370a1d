//! Evaluation metrics, each matching its reference implementation number for number.
//!
//! - [`classification`]: accuracy, macro F1 and the Matthews correlation coefficient, as
//!   scikit-learn's `accuracy_score`, `f1_score(average="macro", labels=range(n))` and
//!   `matthews_corrcoef` compute them (GLUE and SuperGLUE classification tasks).
//! - [`seqeval`]: span-level precision, recall and F1 for BIO / IOBES tagging, as the Python
//!   `seqeval` package computes them in its default (conlleval-compatible) mode (CoNLL-03 NER).
//! - [`squad`]: exact match and token F1 over normalized answers, as the official SQuAD v1.1
//!   script `evaluate-v1.1.py` computes them.
//!
//! Everything here is plain Rust over labels and strings: no tensors, no backend. The functions
//! return values for every input; where a reference raises (empty input, mismatched lengths) the
//! function documents what it returns instead.

pub mod classification;
pub mod seqeval;
pub mod squad;

pub use classification::{accuracy, macro_f1, matthews_corrcoef};
pub use seqeval::{Prf, Span, SpanScores, extract_spans, span_scores};
pub use squad::SquadScores;
