//! Sentence and sentence-pair classification data: `.jsonl`, `.csv` and `.tsv` readers, and the
//! label set that maps label names to class indices.

use std::cmp::Ordering;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use pet_core::PetError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Budgeted, Lines, MAX_LINE_BYTES, RecordBudget, data_error, open_text};
use crate::error::{NlpError, Result};

/// One example of a classification data file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassificationExample {
    /// The text, or the first text of a pair.
    pub text: String,
    /// The second text of a pair (sentence-pair tasks such as NLI).
    pub text_pair: Option<String>,
    /// The label in its string form (an integer label `1` reads as `"1"`); `None` for an
    /// unlabelled example.
    pub label: Option<String>,
}

/// Reads a classification data file, choosing the format by the extension (case-insensitive).
///
/// - `.jsonl`: one JSON object per line with a string `text`, an optional string `text_pair` and
///   an optional `label` that is a string or an integer (kept as its string form); `null` counts
///   as absent, blank lines are skipped and other fields are ignored.
/// - `.csv`: comma-separated with RFC 4180 quoting (`"a, b"`, `""` for a quote inside quotes).
/// - `.tsv`: tab-separated without quoting, as GLUE's files: a `"` is an ordinary character and
///   a field cannot hold a tab or a line break.
///
/// CSV and TSV files start with a header row naming the columns `text`, optionally `text_pair`
/// and `label`, in any order; other columns are ignored, blank lines are skipped, and every row
/// has as many fields as the header. An empty `text_pair` or `label` field counts as absent.
///
/// This collects [`classification_examples`], which streams the file one example at a time.
///
/// # Errors
///
/// [`PetError::Io`] if the file cannot be read, [`PetError::Format`] for another extension, and
/// [`PetError::Data`] naming the file and the one-based line of the first bad line: broken JSON,
/// a missing or mistyped field, a header without `text`, a row with too few or too many fields,
/// a line or record longer than [`MAX_LINE_BYTES`](super::MAX_LINE_BYTES).
pub fn read_classification(path: &Path) -> Result<Vec<ClassificationExample>> {
    classification_examples(path)?.map(|example| example.map(|(_, example)| example)).collect()
}

/// The examples of a classification data file (the formats of [`read_classification`]), read
/// one at a time, each with the one-based line it starts on; the first error ends them.
///
/// # Errors
///
/// [`PetError::Io`] if the file cannot be opened, [`PetError::Format`] for another extension,
/// [`PetError::Data`] for a CSV or TSV header that cannot be used; the iterator yields the
/// errors of [`read_classification`] for the lines after it.
pub fn classification_examples(path: &Path) -> Result<ClassificationExamples> {
    let extension = path.extension().and_then(|ext| ext.to_str()).map(str::to_ascii_lowercase);
    let source = match extension.as_deref() {
        Some("jsonl") => Source::Jsonl(Lines::open(path)?),
        Some("csv") => Source::Delimited(Delimited::open(path, b',', true, MAX_LINE_BYTES)?),
        Some("tsv") => Source::Delimited(Delimited::open(path, b'\t', false, MAX_LINE_BYTES)?),
        _ => {
            return Err(PetError::format(
                path,
                "unknown classification data format: expected a .jsonl, .csv or .tsv file",
            )
            .into());
        }
    };
    Ok(ClassificationExamples { path: path.to_path_buf(), source, done: false })
}

/// The examples of a classification data file, one at a time: see [`classification_examples`].
#[derive(Debug)]
pub struct ClassificationExamples {
    path: PathBuf,
    source: Source,
    done: bool,
}

#[derive(Debug)]
enum Source {
    Jsonl(Lines<BufReader<File>>),
    Delimited(Delimited),
}

impl Iterator for ClassificationExamples {
    type Item = Result<(usize, ClassificationExample)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = match &mut self.source {
            Source::Jsonl(lines) => next_jsonl(lines, &self.path),
            Source::Delimited(rows) => rows.next_example(&self.path),
        };
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

/// The next example of a JSON-lines file, past blank lines.
fn next_jsonl(
    lines: &mut Lines<BufReader<File>>,
    path: &Path,
) -> Option<Result<(usize, ClassificationExample)>> {
    for line in lines.by_ref() {
        let (number, line) = match line {
            Ok(line) => line,
            Err(err) => return Some(Err(err)),
        };
        if line.trim().is_empty() {
            continue;
        }
        return Some(
            parse_jsonl_line(&line)
                .map(|example| (number, example))
                .map_err(|reason| data_error(path, number, reason)),
        );
    }
    None
}

/// Parses one non-blank line of a JSON-lines file, or says what is wrong with it.
fn parse_jsonl_line(line: &str) -> std::result::Result<ClassificationExample, String> {
    const EXPECTED: &str = "expected a JSON object with a string field `text`";
    let value: Value = serde_json::from_str(line).map_err(|err| format!("{EXPECTED}: {err}"))?;
    let Value::Object(mut object) = value else {
        return Err(format!("{EXPECTED}: found {}", json_kind(&value)));
    };
    let text = match object.remove("text") {
        Some(Value::String(text)) => text,
        Some(other) => {
            return Err(format!("{EXPECTED}: field `text` is {}", json_kind(&other)));
        }
        None => return Err(format!("{EXPECTED}: field `text` is missing")),
    };
    let text_pair = match object.remove("text_pair") {
        None | Some(Value::Null) => None,
        Some(Value::String(pair)) => Some(pair),
        Some(other) => {
            return Err(format!(
                "field `text_pair` must be a string or null, found {}",
                json_kind(&other)
            ));
        }
    };
    let label = match object.get("label") {
        None | Some(Value::Null) => None,
        Some(Value::String(label)) => Some(label.clone()),
        Some(Value::Number(number)) if number.is_i64() || number.is_u64() => {
            Some(number.to_string())
        }
        Some(other) => {
            return Err(format!(
                "field `label` must be a string, an integer or null, found {}",
                json_kind(other)
            ));
        }
    };
    Ok(ClassificationExample { text, text_pair, label })
}

/// What kind of JSON value `value` is, for messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The records of a CSV (`delimiter` `,`, with quoting) or TSV (`\t`, without) file after its
/// header row, each at most [`MAX_LINE_BYTES`] long.
struct Delimited {
    records: csv::StringRecordsIntoIter<Budgeted<BufReader<File>>>,
    budget: RecordBudget,
    header_len: usize,
    text_column: usize,
    pair_column: Option<usize>,
    label_column: Option<usize>,
    line: usize,
}

impl std::fmt::Debug for Delimited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delimited")
            .field("header_len", &self.header_len)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

impl Delimited {
    /// Opens the file and reads its header row; a record may be `max_bytes` long.
    fn open(path: &Path, delimiter: u8, quoting: bool, max_bytes: usize) -> Result<Self> {
        let budget = RecordBudget { used: Default::default(), max_bytes };
        let input = Budgeted { inner: open_text(path)?, budget: budget.clone() };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .quoting(quoting)
            .has_headers(true)
            .flexible(true)
            .from_reader(input);
        let header = reader.headers().map_err(|err| csv_error(path, err, 1))?.clone();
        budget.reset();
        let header_line = header.position().map_or(1, |position| to_line(position.line()));
        let column = |name: &str| -> Result<Option<usize>> {
            let mut found = header.iter().enumerate().filter(|(_, field)| *field == name);
            let first = found.next().map(|(index, _)| index);
            if found.next().is_some() {
                return Err(data_error(path, header_line, format!("duplicate column `{name}`")));
            }
            Ok(first)
        };
        let text_column = column("text")?
            .ok_or_else(|| data_error(path, header_line, "missing column `text`"))?;
        Ok(Self {
            pair_column: column("text_pair")?,
            label_column: column("label")?,
            text_column,
            header_len: header.len(),
            records: reader.into_records(),
            budget,
            line: header_line,
        })
    }

    /// The next row as an example.
    fn next_example(&mut self, path: &Path) -> Option<Result<(usize, ClassificationExample)>> {
        let record = match self.records.next()? {
            Ok(record) => record,
            Err(err) => return Some(Err(csv_error(path, err, self.line + 1))),
        };
        self.budget.reset();
        self.line = record.position().map_or(self.line + 1, |position| to_line(position.line()));
        let line = self.line;
        if record.len() < self.header_len {
            let used = [
                ("text", Some(self.text_column)),
                ("text_pair", self.pair_column),
                ("label", self.label_column),
            ];
            let reason =
                match used.iter().find(|(_, index)| index.is_some_and(|i| i >= record.len())) {
                    Some((name, _)) => format!("missing column `{name}`"),
                    None => format!(
                        "expected {} fields as in the header, found {}",
                        self.header_len,
                        record.len()
                    ),
                };
            return Some(Err(data_error(path, line, reason)));
        }
        if record.len() > self.header_len {
            let reason = format!(
                "expected {} fields as in the header, found {}",
                self.header_len,
                record.len()
            );
            return Some(Err(data_error(path, line, reason)));
        }
        let optional = |index: Option<usize>| {
            index.and_then(|i| record.get(i)).filter(|field| !field.is_empty()).map(str::to_owned)
        };
        let example = ClassificationExample {
            text: record.get(self.text_column).unwrap_or_default().to_owned(),
            text_pair: optional(self.pair_column),
            label: optional(self.label_column),
        };
        Some(Ok((line, example)))
    }
}

/// A [`PetError::Data`] for a CSV error, at its line or else at `fallback_line`.
fn csv_error(path: &Path, err: csv::Error, fallback_line: usize) -> NlpError {
    let line = err.position().map_or(fallback_line, |position| to_line(position.line()));
    data_error(path, line, err.to_string())
}

/// A one-based line number of the `csv` crate as a `usize`.
fn to_line(line: u64) -> usize {
    usize::try_from(line).unwrap_or(usize::MAX)
}

/// The distinct labels of a data set in a fixed order; a label's index in it is its class index.
///
/// The order is numeric when every label is an integer (so `"2"` comes before `"10"`, and the
/// labels `0..n` get the indices `0..n`), and lexicographic by bytes otherwise. It serializes as
/// the plain list of names, and deserializing checks that the list is in this order without
/// repeats, so that a label set stored in a checkpoint's metadata keeps its indices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct LabelSet {
    /// The labels, in class-index order.
    names: Vec<String>,
    /// Whether every label is an integer, so that the order is numeric.
    numeric: bool,
}

impl LabelSet {
    /// The label set of `labels`, sorted, without repeats.
    pub fn new<I, S>(labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut names: Vec<String> = labels.into_iter().map(Into::into).collect();
        let numeric = all_integers(&names);
        names.sort_by(|a, b| compare_labels(a, b, numeric));
        names.dedup();
        Self { names, numeric }
    }

    /// The label set of the labelled examples among `examples`.
    pub fn from_examples<'a>(
        examples: impl IntoIterator<Item = &'a ClassificationExample>,
    ) -> Self {
        Self::new(examples.into_iter().filter_map(|example| example.label.clone()))
    }

    /// The class index of `label`, or `None` if it is not in the set.
    pub fn index_of(&self, label: &str) -> Option<usize> {
        if self.numeric && label.parse::<i64>().is_err() {
            return None;
        }
        self.names.binary_search_by(|name| compare_labels(name, label, self.numeric)).ok()
    }

    /// The label of class `index`, or `None` past the last class.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(String::as_str)
    }

    /// All labels, in class-index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the set holds no label.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl TryFrom<Vec<String>> for LabelSet {
    type Error = String;

    /// Takes `names` as they are, refusing a list that is out of order or repeats a label.
    fn try_from(names: Vec<String>) -> std::result::Result<Self, String> {
        let numeric = all_integers(&names);
        for pair in names.windows(2) {
            if compare_labels(&pair[0], &pair[1], numeric) != Ordering::Less {
                return Err(format!(
                    "label set must be sorted without repeats, found `{}` before `{}`",
                    pair[0], pair[1]
                ));
            }
        }
        Ok(Self { names, numeric })
    }
}

impl From<LabelSet> for Vec<String> {
    fn from(labels: LabelSet) -> Self {
        labels.names
    }
}

/// Whether every label parses as an `i64` (and there is at least one).
fn all_integers(names: &[String]) -> bool {
    !names.is_empty() && names.iter().all(|name| name.parse::<i64>().is_ok())
}

/// The order of [`LabelSet`]: by integer value, then by text when `numeric`; by text otherwise.
fn compare_labels(a: &str, b: &str, numeric: bool) -> Ordering {
    if numeric {
        let value = |label: &str| label.parse::<i64>().unwrap_or_default();
        value(a).cmp(&value(b)).then_with(|| a.cmp(b))
    } else {
        a.cmp(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::TempFile;

    fn example(text: &str, text_pair: Option<&str>, label: Option<&str>) -> ClassificationExample {
        ClassificationExample {
            text: text.to_owned(),
            text_pair: text_pair.map(str::to_owned),
            label: label.map(str::to_owned),
        }
    }

    fn error_message(name: &str, file_name: &str, contents: &str) -> String {
        let file = TempFile::new(name, file_name, contents);
        read_classification(file.path()).expect_err("the file is refused").to_string()
    }

    #[test]
    fn jsonl_reads_text_pair_and_label() {
        let file = TempFile::new(
            "jsonl_reads",
            "data.jsonl",
            "{\"text\": \"a\", \"text_pair\": \"b\", \"label\": \"pos\", \"id\": 7}\n\
             {\"text\": \"c\"}\n",
        );
        let examples = read_classification(file.path()).expect("read");
        assert_eq!(examples, [example("a", Some("b"), Some("pos")), example("c", None, None)]);
    }

    #[test]
    fn jsonl_integer_labels_read_as_strings() {
        let file = TempFile::new(
            "jsonl_integer",
            "data.jsonl",
            "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": -3}\n\
             {\"text\": \"c\", \"label\": null}\n",
        );
        let examples = read_classification(file.path()).expect("read");
        let labels: Vec<_> = examples.iter().map(|e| e.label.as_deref()).collect();
        assert_eq!(labels, [Some("1"), Some("-3"), None]);
    }

    #[test]
    fn jsonl_blank_lines_are_skipped() {
        let file = TempFile::new(
            "jsonl_blank",
            "data.jsonl",
            "\n{\"text\": \"a\"}\r\n   \n\n{\"text\": \"b\"}",
        );
        let examples = read_classification(file.path()).expect("read");
        assert_eq!(examples, [example("a", None, None), example("b", None, None)]);
    }

    #[test]
    fn broken_json_line_names_its_line_number() {
        let message =
            error_message("jsonl_broken", "data.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \"b\"\n");
        assert!(
            message.contains("data.jsonl:3: expected a JSON object with a string field `text`: "),
            "{message}"
        );
    }

    #[test]
    fn jsonl_without_text_names_its_line_number() {
        let message =
            error_message("jsonl_no_text", "data.jsonl", "{\"text\": \"a\"}\n{\"label\": 1}\n");
        assert!(
            message.contains(
                "data.jsonl:2: expected a JSON object with a string field `text`: field `text` is missing"
            ),
            "{message}"
        );
        let message = error_message("jsonl_array", "data.jsonl", "[\"a\"]\n");
        assert!(message.contains("data.jsonl:1: expected a JSON object"), "{message}");
        assert!(message.ends_with("found an array"), "{message}");
    }

    #[test]
    fn jsonl_float_label_is_refused() {
        let message =
            error_message("jsonl_float", "data.jsonl", "{\"text\": \"a\", \"label\": 0.5}\n");
        assert!(message.contains("data.jsonl:1: field `label` must be a string"), "{message}");
    }

    #[test]
    fn csv_quoted_field_keeps_its_comma() {
        let file = TempFile::new(
            "csv_quoted",
            "train.csv",
            "id,label,text\n1,pos,\"good, really \"\"good\"\"\"\n2,neg,\"two\nlines\"\n",
        );
        let examples = read_classification(file.path()).expect("read");
        assert_eq!(
            examples,
            [
                example("good, really \"good\"", None, Some("pos")),
                example("two\nlines", None, Some("neg"))
            ]
        );
    }

    #[test]
    fn tsv_quotes_are_literal() {
        let file = TempFile::new(
            "tsv_quotes",
            "train.tsv",
            "text\ttext_pair\tlabel\nit 's \"charming\t\"and, yes\t0\nalone\t\t\n",
        );
        let examples = read_classification(file.path()).expect("read");
        assert_eq!(
            examples,
            [
                example("it 's \"charming", Some("\"and, yes"), Some("0")),
                example("alone", None, None)
            ]
        );
    }

    #[test]
    fn tsv_header_without_text_is_refused() {
        let message = error_message("tsv_no_text", "train.tsv", "sentence\tlabel\na\t1\n");
        assert!(message.ends_with("train.tsv:1: missing column `text`"), "{message}");
    }

    #[test]
    fn tsv_short_row_names_its_missing_column() {
        let message = error_message("tsv_short_row", "train.tsv", "label\ttext\n1\ta\n\n0\tb\n1\n");
        assert!(message.ends_with("train.tsv:5: missing column `text`"), "{message}");
    }

    #[test]
    fn csv_long_row_names_its_line_number() {
        let message = error_message("csv_long_row", "train.csv", "text,label\na,1\nb,2,3\n");
        assert!(
            message.ends_with("train.csv:3: expected 2 fields as in the header, found 3"),
            "{message}"
        );
    }

    #[test]
    fn csv_record_past_the_byte_cap_is_refused_while_read() {
        let long = "x".repeat(40_000);
        let contents = format!("text,label\na,1\n\"{long}\n{long}\",2\nb,3\n");
        let file = TempFile::new("csv_cap", "train.csv", contents);
        let mut rows = Delimited::open(file.path(), b',', true, 50_000).expect("header");
        let first = rows.next_example(file.path()).expect("a row").expect("short row");
        assert_eq!(first, (2, example("a", None, Some("1"))));
        let err = rows.next_example(file.path()).expect("a row").expect_err("long record");
        assert!(err.to_string().contains("longer than 50000 bytes"), "{err}");
    }

    #[test]
    fn examples_stream_with_their_first_line() {
        let file = TempFile::new("csv_lines", "train.csv", "text,label\n\"two\nlines\",1\nb,0\n");
        let lines: Vec<usize> = classification_examples(file.path())
            .expect("open")
            .map(|e| e.expect("example").0)
            .collect();
        assert_eq!(lines, [2, 4]);
        let file = TempFile::new(
            "jsonl_lines",
            "d.jsonl",
            "\n{\"text\": \"a\"}\n{\"text\": 1}\n{\"text\": \"b\"}\n",
        );
        let read: Vec<_> = classification_examples(file.path()).expect("open").collect();
        assert_eq!(read.len(), 2, "the first error ends the examples");
        assert_eq!(read[0].as_ref().expect("line 2").0, 2);
    }

    #[test]
    fn unknown_extension_is_refused() {
        let message = error_message("unknown_ext", "train.txt", "text\n");
        assert!(message.contains("unknown classification data format"), "{message}");
    }

    #[test]
    fn label_set_sorts_and_indexes_labels() {
        let examples = [
            example("a", None, Some("pos")),
            example("b", None, None),
            example("c", None, Some("neg")),
            example("d", None, Some("pos")),
        ];
        let labels = LabelSet::from_examples(&examples);
        assert_eq!(labels.names(), ["neg", "pos"]);
        assert_eq!(labels.index_of("pos"), Some(1));
        assert_eq!(labels.index_of("neutral"), None);
        assert_eq!(labels.name(0), Some("neg"));
        assert_eq!(labels.name(2), None);
        assert_eq!(labels.len(), 2);
    }

    #[test]
    fn label_set_orders_integer_labels_numerically() {
        let labels = LabelSet::new(["10", "2", "0", "1", "2"]);
        assert_eq!(labels.names(), ["0", "1", "2", "10"]);
        assert_eq!(labels.index_of("10"), Some(3));
        assert_eq!(labels.index_of("pos"), None);
        let mixed = LabelSet::new(["10", "2", "b"]);
        assert_eq!(mixed.names(), ["10", "2", "b"]);
    }

    #[test]
    fn label_set_round_trips_through_json() {
        let labels = LabelSet::new(["neg", "pos", "neutral"]);
        let json = serde_json::to_string(&labels).expect("serialize");
        assert_eq!(json, r#"["neg","neutral","pos"]"#);
        let back: LabelSet = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, labels);
    }

    #[test]
    fn label_set_out_of_order_json_is_refused() {
        let err = serde_json::from_str::<LabelSet>(r#"["pos","neg"]"#).expect_err("refused");
        assert!(err.to_string().contains("must be sorted without repeats"), "{err}");
        let err = serde_json::from_str::<LabelSet>(r#"["1","1"]"#).expect_err("refused");
        assert!(err.to_string().contains("must be sorted without repeats"), "{err}");
    }
}
