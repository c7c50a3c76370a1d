//! `pet predict` and `pet eval` on pre-tokenized lines (`input_ids`, `attention_mask`,
//! `token_type_ids`, and `word_ids` for tagging) over a model folder without `tokenizer.json`:
//! the SEQ_CLS and TOKEN_CLS PEFT adapters of the tiny BERT fixture give the same logits, labels
//! and scores as the text lines through the tokenizer, padded lines included; text lines over
//! such a folder are refused with an error that names the folder and the input file.

use std::path::{Path, PathBuf};

use pet_cli::device::{DeviceSpec, run_on};
use pet_cli::predict::{PredictJob, PredictOutcome};
use pet_core::precision::Precision;
use pet_core::testing::TempDir;
use pet_nlp::tokenize::TextTokenizer;
use serde_json::{Value, json};

fn fixtures(case: &str) -> PathBuf {
    crate::fixtures::parity("encoders", case)
}

/// The tiny BERT folder without its tokenizer: `config.json` and `model.safetensors` only.
fn folder_without_tokenizer(dir: &Path) -> PathBuf {
    let folder = dir.join("bert-ids");
    std::fs::create_dir_all(&folder).expect("folder");
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures("bert").join(file), folder.join(file)).expect("copy");
    }
    folder
}

/// The texts of the adapter's `inputs.jsonl`.
fn texts() -> Vec<String> {
    let text = std::fs::read_to_string(fixtures("bert_peft_seq_cls").join("inputs.jsonl"))
        .expect("inputs");
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["text"].as_str().expect("text").into()
        })
        .collect()
}

/// The texts as pre-tokenized lines, right-padded with id 0 to `pad_to` tokens, with `labels`.
fn ids_file(dir: &Path, pad_to: usize, labels: &[Option<String>]) -> PathBuf {
    let tokenizer =
        TextTokenizer::from_file(&fixtures("bert").join("tokenizer.json"), 64).expect("tokenizer");
    let lines: String = texts()
        .iter()
        .zip(labels)
        .map(|(text, label)| {
            let encoded = tokenizer.encode(text, None).expect("encode");
            let n = encoded.input_ids.len();
            let pad = |v: &[u32]| {
                let mut v = v.to_vec();
                v.resize(pad_to.max(n), 0);
                v
            };
            let mask: Vec<u32> = (0..pad_to.max(n)).map(|i| u32::from(i < n)).collect();
            let mut line = json!({
                "input_ids": pad(&encoded.input_ids),
                "attention_mask": mask,
                "token_type_ids": pad(&encoded.token_type_ids),
            });
            if let Some(label) = label {
                line["label"] = json!(label);
            }
            format!("{line}\n")
        })
        .collect();
    let path = dir.join(format!("ids-{pad_to}.jsonl"));
    std::fs::write(&path, lines).expect("ids");
    path
}

fn job(model: &Path, input: &Path, output: Option<PathBuf>) -> PredictJob {
    job_with(model, "bert_peft_seq_cls", input, output)
}

fn job_with(model: &Path, adapter: &str, input: &Path, output: Option<PathBuf>) -> PredictJob {
    PredictJob {
        overwrite: true, // the tests predict several inputs into the same file
        model: model.display().to_string(),
        delta: fixtures(adapter),
        input: input.to_path_buf(),
        output,
        precision: Precision::F32,
    }
}

fn predictions(job: PredictJob) -> Vec<Value> {
    let output = job.output.clone().expect("an output file");
    assert!(matches!(run_on(DeviceSpec::Cpu, job).expect("predict"), PredictOutcome::Written(_)));
    std::fs::read_to_string(output)
        .expect("predictions")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn pre_tokenized_lines_predict_and_score_without_a_tokenizer() {
    let dir = TempDir::new("pretokenized");
    let d = dir.path();
    let from_text = predictions(job(
        &fixtures("bert"),
        &fixtures("bert_peft_seq_cls").join("inputs.jsonl"),
        Some(d.join("text.jsonl")),
    ));
    let bare = folder_without_tokenizer(d);
    let unlabelled = vec![None; from_text.len()];
    for pad_to in [0, 24] {
        let input = ids_file(d, pad_to, &unlabelled);
        let from_ids = predictions(job(&bare, &input, Some(d.join("ids.jsonl"))));
        assert_eq!(from_ids.len(), from_text.len());
        for (ids, text) in from_ids.iter().zip(&from_text) {
            assert_eq!(ids["label"], text["label"], "padded to {pad_to}");
            let logits = |v: &Value| -> Vec<f64> {
                v["logits"].as_array().expect("logits").iter().filter_map(Value::as_f64).collect()
            };
            let diff = logits(ids).into_iter().zip(logits(text)).map(|(a, b)| (a - b).abs());
            assert!(diff.fold(0.0, f64::max) < 1e-6, "padded to {pad_to}: {ids} vs {text}");
        }
    }
    // Scored against the labels it predicts, the model is right on every line.
    let labels: Vec<Option<String>> =
        from_text.iter().map(|l| l["label"].as_str().map(str::to_string)).collect();
    let labelled = ids_file(d, 24, &labels);
    let PredictOutcome::Scored(metrics) =
        run_on(DeviceSpec::Cpu, job(&bare, &labelled, None)).expect("eval")
    else {
        panic!("eval scores")
    };
    assert_eq!(metrics["accuracy"], 1.0, "{metrics:?}");
}

#[test]
fn text_over_a_folder_without_a_tokenizer_names_the_folder_and_the_input() {
    let dir = TempDir::new("no-tokenizer");
    let bare = folder_without_tokenizer(dir.path());
    let input = fixtures("bert_peft_seq_cls").join("inputs.jsonl");
    for output in [Some(dir.path().join("out.jsonl")), None] {
        let err = format!(
            "{:#}",
            run_on(DeviceSpec::Cpu, job(&bare, &input, output)).expect_err("no tokenizer")
        );
        assert!(err.contains(&bare.display().to_string()), "{err}");
        assert!(err.contains(&input.display().to_string()), "{err}");
        assert!(err.contains("tokenizer.json") && err.contains("input_ids"), "{err}");
    }
}

fn scored(job: PredictJob) -> std::collections::BTreeMap<String, f64> {
    match run_on(DeviceSpec::Cpu, job).expect("eval") {
        PredictOutcome::Scored(metrics) => metrics,
        PredictOutcome::Written(_) => panic!("eval scores"),
    }
}

#[test]
fn pre_tokenized_lines_with_word_ids_tag_and_score_like_words() {
    let dir = TempDir::new("pretokenized-tags");
    let d = dir.path();
    let adapter = "bert_peft_token_cls";
    let words_file = fixtures(adapter).join("inputs.jsonl");
    let from_words =
        predictions(job_with(&fixtures("bert"), adapter, &words_file, Some(d.join("w.jsonl"))));
    let tokenizer =
        TextTokenizer::from_file(&fixtures("bert").join("tokenizer.json"), 64).expect("tokenizer");
    // Each sentence as ids with word ids and its predicted tags, right-padded by two tokens.
    let (mut ids_lines, mut conll) = (String::new(), String::new());
    for line in &from_words {
        let words: Vec<String> = serde_json::from_value(line["tokens"].clone()).expect("tokens");
        let tags: Vec<String> = serde_json::from_value(line["tags"].clone()).expect("tags");
        let encoded = tokenizer.encode_words(&words).expect("encode");
        let pad = |v: &[u32]| [v, &[0, 0][..]].concat();
        let word_ids: Vec<Value> =
            encoded.word_ids.iter().map(|w| json!(w)).chain([Value::Null, Value::Null]).collect();
        let mask: Vec<u32> = encoded.input_ids.iter().map(|_| 1).chain([0, 0]).collect();
        let ids = json!({
            "input_ids": pad(&encoded.input_ids), "attention_mask": mask,
            "token_type_ids": pad(&encoded.token_type_ids), "word_ids": word_ids, "tags": tags,
        });
        ids_lines.push_str(&format!("{ids}\n"));
        for (word, tag) in words.iter().zip(&tags) {
            conll.push_str(&format!("{word}\t{tag}\n"));
        }
        conll.push('\n');
    }
    let (ids_file, conll_file) = (d.join("ids.jsonl"), d.join("gold.conll"));
    std::fs::write(&ids_file, ids_lines).expect("ids");
    std::fs::write(&conll_file, conll).expect("conll");
    let bare = folder_without_tokenizer(d);
    let from_ids = predictions(job_with(&bare, adapter, &ids_file, Some(d.join("i.jsonl"))));
    assert_eq!(from_ids.len(), from_words.len());
    for (ids, words) in from_ids.iter().zip(&from_words) {
        assert_eq!(ids["tags"], words["tags"]);
        assert_eq!(
            ids["logits"].as_array().map(Vec::len),
            words["logits"].as_array().map(Vec::len)
        );
    }
    let on_ids = scored(job_with(&bare, adapter, &ids_file, None));
    let on_words = scored(job_with(&fixtures("bert"), adapter, &conll_file, None));
    assert_eq!(on_ids, on_words);
    assert!(on_ids.contains_key("f1"), "{on_ids:?}");
}
