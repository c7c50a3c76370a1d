//! Extractive question answering data in the SQuAD v1.1 / v2.0 JSON layout
//! (`data[].paragraphs[].qas[]`), with every answer checked against its context.

use std::collections::HashSet;
use std::path::Path;

use pet_core::PetError;
use serde::{Deserialize, Serialize};

use super::read_text;
use crate::error::Result;

/// One answer of a SQuAD question: a span of the context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The answer's text, equal to the context's span.
    pub text: String,
    /// Where the span starts in the context, in characters (Unicode code points, as Python
    /// counts them), not bytes.
    pub answer_start: usize,
}

/// One question of a SQuAD file, with its paragraph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SquadExample {
    /// The question's id, unique in the file.
    pub id: String,
    /// The title of the article the paragraph comes from (empty if the file has none).
    pub title: String,
    /// The paragraph that holds the answers.
    pub context: String,
    /// The question.
    pub question: String,
    /// The answers: one in a training file, several (possibly repeated) in a dev file, none for
    /// an unanswerable question.
    pub answers: Vec<Answer>,
    /// Whether the question has no answer in the context (SQuAD v2.0; always `false` in v1.1).
    pub is_impossible: bool,
}

/// The file as SQuAD writes it; other fields (`version`, `plausible_answers`) are ignored.
#[derive(Deserialize)]
struct RawFile {
    data: Vec<RawArticle>,
}

#[derive(Deserialize)]
struct RawArticle {
    #[serde(default)]
    title: String,
    paragraphs: Vec<RawParagraph>,
}

#[derive(Deserialize)]
struct RawParagraph {
    context: String,
    qas: Vec<RawQuestion>,
}

#[derive(Deserialize)]
struct RawQuestion {
    id: String,
    question: String,
    #[serde(default)]
    answers: Vec<Answer>,
    #[serde(default)]
    is_impossible: bool,
}

/// Reads a SQuAD v1.1 or v2.0 JSON file, one example per question, in file order.
///
/// Each answer is checked: its text must be non-empty and equal the context's characters from
/// `answer_start` on. A question has answers unless it is marked `is_impossible`, and then it has
/// none; ids are unique.
///
/// # Errors
///
/// [`PetError::Io`] if the file cannot be read, [`PetError::Data`] naming the line of a byte that
/// is not UTF-8, and [`PetError::Format`] naming the file for JSON that does not have SQuAD's
/// layout (with serde's line and column) or, with the question id, for an answer that does not
/// match its context, an answerable question without answers, an unanswerable one with answers,
/// or a repeated id.
pub fn read_squad(path: &Path) -> Result<Vec<SquadExample>> {
    let text = read_text(path)?;
    let raw: RawFile = serde_json::from_str(&text)
        .map_err(|err| PetError::format(path, format!("not a SQuAD JSON file: {err}")))?;
    let mut ids = HashSet::new();
    let mut examples = Vec::new();
    for article in raw.data {
        for paragraph in article.paragraphs {
            // Byte offset of every character of the context, and of its end.
            let char_starts: Vec<usize> = paragraph
                .context
                .char_indices()
                .map(|(byte, _)| byte)
                .chain([paragraph.context.len()])
                .collect();
            for question in paragraph.qas {
                let refuse = |reason: String| -> crate::error::NlpError {
                    PetError::format(path, format!("question `{}`: {reason}", question.id)).into()
                };
                if !ids.insert(question.id.clone()) {
                    return Err(refuse("the id is repeated".to_owned()));
                }
                match (question.is_impossible, question.answers.len()) {
                    (true, 0) | (false, 1..) => {}
                    (true, count) => {
                        return Err(refuse(format!(
                            "marked `is_impossible` but has {count} answers"
                        )));
                    }
                    (false, 0) => {
                        return Err(refuse("no answers and not marked `is_impossible`".to_owned()));
                    }
                }
                for answer in &question.answers {
                    check_answer(&paragraph.context, &char_starts, answer).map_err(refuse)?;
                }
                examples.push(SquadExample {
                    id: question.id,
                    title: article.title.clone(),
                    context: paragraph.context.clone(),
                    question: question.question,
                    answers: question.answers,
                    is_impossible: question.is_impossible,
                });
            }
        }
    }
    Ok(examples)
}

/// Checks that `answer` is the span of `context` it claims to be; `char_starts` holds the byte
/// offset of every character of `context` and then `context.len()`.
fn check_answer(
    context: &str,
    char_starts: &[usize],
    answer: &Answer,
) -> std::result::Result<(), String> {
    let length = answer.text.chars().count();
    if length == 0 {
        return Err(format!("empty answer text at character {}", answer.answer_start));
    }
    let characters = char_starts.len() - 1;
    let end = answer.answer_start.saturating_add(length);
    if end > characters {
        return Err(format!(
            "answer `{}` at character {} runs past the end of the context ({characters} \
             characters)",
            answer.text, answer.answer_start
        ));
    }
    let found = &context[char_starts[answer.answer_start]..char_starts[end]];
    if found != answer.text {
        return Err(format!(
            "answer `{}` does not match the context at character {}, which holds `{found}`",
            answer.text, answer.answer_start
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::TempFile;
    use crate::error::NlpError;

    fn squad_json(context: &str, qas: serde_json::Value) -> String {
        serde_json::json!({
            "version": "v2.0",
            "data": [{
                "title": "Zürich",
                "paragraphs": [{ "context": context, "qas": qas }]
            }]
        })
        .to_string()
    }

    fn error_message(name: &str, contents: &str) -> String {
        let file = TempFile::new(name, "dev.json", contents);
        let err = read_squad(file.path()).expect_err("the file is refused");
        assert!(matches!(err, NlpError::Core(PetError::Format { .. })), "{err:?}");
        err.to_string()
    }

    #[test]
    fn squad_reads_v2_questions() {
        let context = "Zürich lies on Lake Zürich.";
        let json = squad_json(
            context,
            serde_json::json!([
                {
                    "id": "q1",
                    "question": "Where is Zürich?",
                    "answers": [{ "text": "Lake Zürich", "answer_start": 15 }],
                    "is_impossible": false
                },
                {
                    "id": "q2",
                    "question": "Who founded Zürich?",
                    "answers": [],
                    "plausible_answers": [{ "text": "Zürich", "answer_start": 0 }],
                    "is_impossible": true
                }
            ]),
        );
        let file = TempFile::new("squad_v2", "dev.json", json);
        let examples = read_squad(file.path()).expect("read");
        assert_eq!(
            examples,
            [
                SquadExample {
                    id: "q1".to_owned(),
                    title: "Zürich".to_owned(),
                    context: context.to_owned(),
                    question: "Where is Zürich?".to_owned(),
                    answers: vec![Answer { text: "Lake Zürich".to_owned(), answer_start: 15 }],
                    is_impossible: false,
                },
                SquadExample {
                    id: "q2".to_owned(),
                    title: "Zürich".to_owned(),
                    context: context.to_owned(),
                    question: "Who founded Zürich?".to_owned(),
                    answers: vec![],
                    is_impossible: true,
                },
            ]
        );
    }

    #[test]
    fn squad_v1_answer_offsets_count_code_points() {
        // "é" and "→" are 2 and 3 bytes but one character each, as Python counts.
        let json = serde_json::json!({
            "version": "1.1",
            "data": [{
                "title": "t",
                "paragraphs": [{
                    "context": "café → bar",
                    "qas": [{
                        "id": "a",
                        "question": "q",
                        "answers": [
                            { "text": "bar", "answer_start": 7 },
                            { "text": "→ bar", "answer_start": 5 }
                        ]
                    }]
                }]
            }]
        })
        .to_string();
        let file = TempFile::new("squad_code_points", "train.json", json);
        let examples = read_squad(file.path()).expect("read");
        assert_eq!(examples.len(), 1);
        assert_eq!(examples[0].answers.len(), 2);
        assert!(!examples[0].is_impossible);
    }

    #[test]
    fn squad_offset_mismatch_names_the_question() {
        let json = squad_json(
            "café → bar and more",
            // 10 is the byte offset of "bar"; its character offset is 7.
            serde_json::json!([{
                "id": "56be4db0acb8001400a502ec",
                "question": "q",
                "answers": [{ "text": "bar", "answer_start": 10 }]
            }]),
        );
        let message = error_message("squad_mismatch", &json);
        assert!(message.contains("dev.json: malformed file: question `56be4db0acb8001400a502ec`: answer `bar` does not match the context at character 10, which holds ` an`"), "{message}");
    }

    #[test]
    fn squad_answer_past_the_context_names_the_question() {
        let json = squad_json(
            "short",
            serde_json::json!([{
                "id": "q9",
                "question": "q",
                "answers": [{ "text": "shorter", "answer_start": 0 }]
            }]),
        );
        let message = error_message("squad_past_end", &json);
        assert!(
            message.contains("question `q9`: answer `shorter` at character 0 runs past"),
            "{message}"
        );
    }

    #[test]
    fn squad_answerable_question_without_answers_is_refused() {
        let json =
            squad_json("c", serde_json::json!([{ "id": "q3", "question": "q", "answers": [] }]));
        let message = error_message("squad_no_answers", &json);
        assert!(message.contains("question `q3`: no answers"), "{message}");
    }

    #[test]
    fn squad_impossible_question_with_answers_is_refused() {
        let json = squad_json(
            "c",
            serde_json::json!([{
                "id": "q4",
                "question": "q",
                "answers": [{ "text": "c", "answer_start": 0 }],
                "is_impossible": true
            }]),
        );
        let message = error_message("squad_impossible", &json);
        assert!(
            message.contains("question `q4`: marked `is_impossible` but has 1 answers"),
            "{message}"
        );
    }

    #[test]
    fn squad_repeated_id_is_refused() {
        let question = serde_json::json!({
            "id": "q5",
            "question": "q",
            "answers": [{ "text": "c", "answer_start": 0 }]
        });
        let json = squad_json("c", serde_json::json!([question.clone(), question]));
        let message = error_message("squad_repeated", &json);
        assert!(message.contains("question `q5`: the id is repeated"), "{message}");
    }

    #[test]
    fn squad_broken_json_is_a_format_error() {
        let message = error_message("squad_broken", "{\"data\": [");
        assert!(message.contains("dev.json: malformed file: not a SQuAD JSON file"), "{message}");
    }
}
