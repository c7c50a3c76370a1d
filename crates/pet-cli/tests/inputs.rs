//! Inputs are checked before they are used: `pet encode`, `pet predict`, `pet eval` and
//! `pet train` on the tiny fixture folders refuse a token id past the vocabulary, a token type
//! past `type_vocab_size`, a row longer than the positions the model (and its delta's prompt or
//! prefix) leaves, an empty row, an id past 32 bits, a `max_length` outside 1 to the model's
//! positions, and an empty file, with an error that names the file, the line and the limit
//! instead of an index panic or a score of 0.

use std::path::{Path, PathBuf};

use pet_cli::device::{DeviceSpec, run_on};
use pet_cli::encode::EncodeJob;
use pet_cli::predict::{PredictJob, PredictOutcome};
use pet_cli::train::{Job, TrainJob};
use pet_core::precision::Precision;
use pet_core::testing::TempDir;

fn fixtures(case: &str) -> PathBuf {
    crate::fixtures::parity("encoders", case)
}

fn encode(model: &str, delta: Option<&str>, input: &Path, max_length: usize) -> String {
    let job = EncodeJob {
        model: fixtures(model).display().to_string(),
        input: input.to_path_buf(),
        output: input.with_extension("safetensors"),
        overwrite: true,
        delta: delta.map(fixtures),
        max_length,
    };
    match run_on(DeviceSpec::Cpu, job) {
        Ok(n) => format!("encoded {n}"),
        Err(err) => format!("{err:#}"),
    }
}

/// A file of one ordinary pre-tokenized line followed by `line`, so the bad row is line 2.
fn second_line(dir: &Path, name: &str, line: &str) -> PathBuf {
    let path = dir.join(format!("{name}.jsonl"));
    std::fs::write(&path, format!("{{\"input_ids\": [2, 5, 3]}}\n{line}\n")).expect("input");
    path
}

fn ids(n: usize) -> String {
    let ids: Vec<String> = (0..n).map(|i| (4 + i % 30).to_string()).collect();
    format!("{{\"input_ids\": [{}]}}", ids.join(", "))
}

#[test]
fn encode_names_the_line_and_the_table_of_an_id_past_it() {
    let dir = TempDir::new("inputs-tables");
    let d = dir.path();
    let cases = [
        (
            "vocab",
            "{\"input_ids\": [1, 2, 999], \"attention_mask\": [1, 1, 1]}",
            "token id 999 at position 2 is outside the vocabulary of 40 ids",
        ),
        (
            "types",
            "{\"input_ids\": [1, 2, 3], \"token_type_ids\": [0, 5, 0]}",
            "token type id 5 at position 1 is outside type_vocab_size 2",
        ),
        ("empty", "{\"input_ids\": [], \"attention_mask\": []}", "the row holds no token"),
        (
            "wrap",
            "{\"input_ids\": [4294967297, 2, 3]}",
            "token id 4294967297 at position 0 is outside the vocabulary of 40 ids",
        ),
        (
            "long",
            &ids(78),
            "78 tokens, more than the 32 the model takes (max_position_embeddings 32)",
        ),
    ];
    for (name, line, expected) in cases {
        let input = second_line(d, name, line);
        let message = encode("bert", None, &input, 16);
        assert!(
            message.contains(&format!("{}:2: {expected}", input.display())),
            "{name}: {message}"
        );
    }
    let roberta = second_line(
        d,
        "roberta-types",
        "{\"input_ids\": [0, 5, 2], \"token_type_ids\": [0, 1, 0]}",
    );
    let message = encode("roberta", None, &roberta, 16);
    assert!(
        message.contains(":2: token type id 1 at position 1 is outside type_vocab_size 1"),
        "{message}"
    );
    // A mask value past 32 bits is no 1: the line is refused, not read as right-padded.
    let mask =
        second_line(d, "mask", "{\"input_ids\": [2, 3], \"attention_mask\": [4294967297, 1]}");
    let message = encode("bert", None, &mask, 16);
    assert!(message.contains(&format!("{}:2: ", mask.display())), "{message}");
}

#[test]
fn encode_leaves_the_prompt_and_prefix_positions_of_the_delta_to_them() {
    let dir = TempDir::new("inputs-positions");
    let d = dir.path();
    // RoBERTa's 40 positions less its offset 2: 38 tokens; less 2 prompt or 3 prefix positions.
    for (delta, fits, reason) in [
        (None, 38, "max_position_embeddings 40 less the position offset (padding_idx + 1) 2)"),
        (Some("roberta_prompt"), 36, "less 2 prompt positions"),
        (Some("roberta_prefix"), 35, "less 3 prefix positions"),
    ] {
        let fitting = second_line(d, "fits", &ids(fits));
        assert_eq!(encode("roberta", delta, &fitting, 16), "encoded 2", "{delta:?}");
        let long = second_line(d, "long", &ids(fits + 1));
        let message = encode("roberta", delta, &long, 16);
        let expected = format!(":2: {} tokens, more than the {fits} the model takes", fits + 1);
        assert!(message.contains(&expected) && message.contains(reason), "{delta:?}: {message}");
    }
}

#[test]
fn max_length_outside_one_to_the_positions_is_refused() {
    let dir = TempDir::new("inputs-max-length");
    let input = dir.path().join("text.jsonl");
    std::fs::write(&input, "{\"text\": \"the cat sat\"}\n").expect("input");
    let zero = encode("bert", None, &input, 0);
    assert!(zero.contains("`max_length`: must be at least 1"), "{zero}");
    let long = encode("bert", None, &input, 33);
    assert!(long.contains("`max_length`: 33 is more than the 32 tokens the model takes"), "{long}");
    assert_eq!(encode("bert", None, &input, 32), "encoded 1");
}

fn predict(input: &Path, output: Option<PathBuf>) -> Result<PredictOutcome, String> {
    let job = PredictJob {
        model: fixtures("bert").display().to_string(),
        delta: fixtures("bert_peft_seq_cls"),
        input: input.to_path_buf(),
        output,
        overwrite: true,
        precision: Precision::F32,
    };
    run_on(DeviceSpec::Cpu, job).map_err(|e| format!("{e:#}"))
}

#[test]
fn predict_and_eval_name_the_line_of_an_id_past_the_vocabulary() {
    let dir = TempDir::new("inputs-predict");
    let d = dir.path();
    let input = d.join("ids.jsonl");
    std::fs::write(
        &input,
        "{\"input_ids\": [2, 5, 3], \"label\": \"0\"}\n\n{\"input_ids\": [2, 999, 3], \"label\": \"1\"}\n",
    )
    .expect("input");
    let expected =
        format!("{}:3: token id 999 at position 1 is outside the vocabulary", input.display());
    for output in [Some(d.join("out.jsonl")), None] {
        let message = predict(&input, output).expect_err("refused");
        assert!(message.contains(&expected), "{message}");
    }
}

#[test]
fn empty_files_are_refused_by_eval_predict_and_train() {
    let dir = TempDir::new("inputs-empty");
    let d = dir.path();
    let empty = d.join("empty.jsonl");
    std::fs::write(&empty, "\n  \n").expect("empty");
    for output in [None, Some(d.join("out.jsonl"))] {
        let message = predict(&empty, output).expect_err("an empty file is refused");
        assert!(
            message.contains(&format!("{}: the file holds no example", empty.display())),
            "{message}"
        );
    }
    let rows = "{\"text\": \"the cat sat\", \"label\": \"cat\"}\n";
    std::fs::write(d.join("data.jsonl"), rows).expect("data");
    let job = |train: &str, dev: &str| {
        let text = format!(
            "model = \"{model}\"\ntask = \"classification\"\ntrain = \"{d}/{train}\"\ndev = \"{d}/{dev}\"\n\
             method = \"lora\"\nmax_length = 16\nbatch_size = 4\noutput = \"{d}/out\"\n\
             [optim]\nepochs = 1\nprogress = false\n",
            model = fixtures("bert").display(),
            d = d.display()
        );
        run_on(DeviceSpec::Cpu, TrainJob(Job::parse(&text, "job").expect("job")))
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    };
    for (train, dev) in [("empty.jsonl", "data.jsonl"), ("data.jsonl", "empty.jsonl")] {
        let message = job(train, dev).expect_err("an empty split is refused");
        assert!(message.contains("empty.jsonl: the file holds no example"), "{message}");
    }
}
