//! pet-tasks on its own: a job file names its task, so one code path trains any task and
//! restores and scores any checkpoint without knowing its type. Here: a tagging job (with a CRF)
//! on a tiny CoNLL file, trained for two epochs, then its checkpoint scored and used to predict,
//! as `pet train`, `pet eval` and `pet predict` do.
//!
//! ```text
//! cargo run -p pet-tasks --example restore_and_score [MODEL_FOLDER]
//! ```
//!
//! Without `MODEL_FOLDER` (a BERT, RoBERTa or DeBERTa folder with `tokenizer.json`), the tiny
//! random BERT of pet-nlp's parity fixtures is used: every step runs, the scores mean nothing.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use pet_core::precision::Precision;
use pet_tasks::run::{Infer, Inference, Inferred, infer, train};
use pet_tasks::{Job, TaskError};

type B = Autodiff<Flex>;

fn main() -> Result<(), TaskError> {
    let folder = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pet-nlp/tests/parity/encoders/bert")
    });
    let work = std::env::temp_dir().join(format!("pet-tasks-example-{}", std::process::id()));
    let io = |e: std::io::Error| TaskError::Job { job: "example".into(), reason: e.to_string() };
    std::fs::create_dir_all(&work).map_err(io)?;
    let conll = work.join("tags.conll");
    let sentences = "john\tB-person\nlives\tO\nin\tO\nparis\tB-geo-loc\n\n\
                     mary\tB-person\nvisited\tO\nrome\tB-geo-loc\n\n";
    std::fs::write(&conll, sentences).map_err(io)?;
    // Prediction input of the tagging task: one JSON line of words (or `text`) per sentence.
    let words = work.join("words.jsonl");
    std::fs::write(&words, "{\"tokens\": [\"anna\", \"lives\", \"in\", \"oslo\"]}\n")
        .map_err(io)?;

    // The job's `task` picks the implementation; `crf` is one of the tagging task's options.
    let output = work.join("run");
    let text = format!(
        "model = {folder:?}\ntask = \"tagging\"\ntrain = {conll:?}\ndev = {conll:?}\n\
         method = \"ptuning-v2\"\noutput = {output:?}\ncrf = true\nmax_length = 16\n\
         batch_size = 2\n[optim]\nepochs = 2\nlearning_rate = 0.01\nprogress = false\n"
    );
    let job = Job::parse(&text, "example job")?;
    let plan = job.plan(folder.clone(), conll.clone(), conll.clone(), None)?;
    let device = Default::default();
    let summary = train::<B>(&job, &plan, &device, |start| println!("{}", start.report))?;
    println!("trained `{}`: best epoch {}, dev {:?}", job.task, summary.best_epoch, summary.dev);

    // Restore by the task the checkpoint names, then score and predict.
    let delta = output.join("delta.safetensors");
    let run = |inference| {
        let how = Infer { inference, precision: Precision::F32, batch_size: 8 };
        infer::<B>(&folder, &delta, &device, how)
    };
    if let Inferred::Metrics(metrics) = run(Inference::Score(&conll))? {
        println!("restored and scored: {metrics:?}");
    }
    // Predictions are pushed to a receiver as each batch is run; a vector keeps them.
    let mut lines: Vec<serde_json::Value> = Vec::new();
    run(Inference::Predict { input: &words, to: &mut lines })?;
    println!("first prediction: {}", lines.first().cloned().unwrap_or_default());
    std::fs::remove_dir_all(&work).map_err(io)?;
    Ok(())
}
