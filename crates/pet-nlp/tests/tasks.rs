//! The task layer as a library, without the command line: [`Classification`] trained by
//! pet-core's `train_task` on the tiny BERT folder, restored from its checkpoint alone by
//! `restore_task`, and scored through the `Task` trait gives the test metrics training reported;
//! its predictions reach their receiver batch by batch as the input is read.

use pet_core::PetError;
use pet_core::delta::set::DeltaSpec;
use pet_core::task::restore::restore_task;
use pet_core::task::train::{TrainPlan, train_task};
use pet_core::task::{Predictions, SplitRole, Task};
use pet_core::testing::{TempDir, TestBackend, serial};
use pet_core::train::TrainConfig;
use pet_nlp::tasks::Classification;
use pet_nlp::tasks::classification::ClassificationOptions;
use serde_json::Value;

use crate::fixtures::case;

type Ad = TestBackend;

#[test]
fn a_task_trains_restores_scores_and_predicts_without_the_command_line() {
    let _serial = serial();
    let dir = TempDir::new("task-library");
    let d = dir.path();
    let rows: String = (0..12)
        .map(|i| match i % 2 {
            0 => "{\"text\": \"the cat sat on the mat\", \"label\": \"cat\"}\n",
            _ => "{\"text\": \"a big dog is running\", \"label\": \"dog\"}\n",
        })
        .collect();
    std::fs::write(d.join("data.jsonl"), rows).expect("data");
    let folder = case("encoders", "bert");
    let data = d.join("data.jsonl");
    let plan = TrainPlan {
        folder: folder.clone(),
        train: data.clone(),
        dev: data.clone(),
        test: Some(data.clone()),
        method: "lora".into(),
        spec: DeltaSpec::preset("lora").expect("preset"),
        batch_size: 4,
        max_train_examples: None,
        max_eval_examples: None,
        output: d.join("out"),
        overwrite: false,
        extra_files: Vec::new(),
        optim: TrainConfig {
            epochs: 2,
            learning_rate: 0.05,
            progress: false,
            ..Default::default()
        },
    };
    let device = Default::default();
    let options = ClassificationOptions { max_length: 16 };
    let summary =
        train_task::<Ad, Classification>(&plan, options, &device, |_| {}).expect("training");
    let test = summary.test.expect("test metrics");

    let delta = d.join("out/delta.safetensors");
    let restored = restore_task::<Ad, Classification>(&folder, &delta, &device).expect("restore");
    let mut task = restored.task;
    assert_eq!(task.labels().names(), ["cat", "dog"]);
    assert_eq!(<Classification as Task<Ad>>::options(&task).max_length, 16);
    let split = Task::<Ad>::read_split(&mut task, &data, SplitRole::Eval, None).expect("split");
    let items: Vec<usize> = (0..<Classification as Task<Ad>>::split_len(&split)).collect();
    let batches = Task::<Ad>::batches(&task, &split, &items, 4);
    let metrics = Task::<Ad>::evaluate(&task, &restored.model, &split, &batches).metrics;
    assert_eq!(metrics, test);

    let mut lines: Vec<Value> = Vec::new();
    let pushed =
        Task::<Ad>::predict(&task, &restored.model, &data, 4, &mut lines).expect("predict");
    assert_eq!((pushed, lines.len()), (12, 12));
    assert!(lines.iter().all(|l| l["label"] == "cat" || l["label"] == "dog"), "{lines:?}");

    // Predictions go out as each batch is run: a receiver that refuses the first one stops
    // predicting before the broken line after the first batch is read.
    let broken = d.join("broken.jsonl");
    let first_batch = "{\"text\": \"the cat sat\"}\n".repeat(4);
    std::fs::write(&broken, format!("{first_batch}{{broken\n")).expect("input");
    let err = Task::<Ad>::predict(&task, &restored.model, &broken, 4, &mut Refusing)
        .expect_err("the receiver refuses");
    assert!(err.to_string().contains("the receiver refuses"), "{err}");
    let mut kept: Vec<Value> = Vec::new();
    let err = Task::<Ad>::predict(&task, &restored.model, &broken, 4, &mut kept)
        .expect_err("a broken line");
    assert!(err.to_string().contains("broken.jsonl:5"), "{err}");
    assert_eq!(kept.len(), 4, "the first batch was pushed before the broken line was read");
}

/// A receiver that takes no prediction.
struct Refusing;

impl Predictions for Refusing {
    fn push(&mut self, _prediction: Value) -> Result<(), PetError> {
        Err(PetError::config("output", "the receiver refuses"))
    }
}

#[test]
fn a_max_length_past_the_positions_is_refused_before_any_split_is_read() {
    let dir = TempDir::new("task-max-length");
    let d = dir.path();
    let missing = d.join("missing.jsonl");
    let plan = TrainPlan {
        folder: case("encoders", "bert"),
        train: missing.clone(),
        dev: missing.clone(),
        test: None,
        method: "prompt".into(),
        spec: DeltaSpec::preset("prompt").expect("preset"),
        batch_size: 4,
        max_train_examples: None,
        max_eval_examples: None,
        output: d.join("out"),
        overwrite: false,
        extra_files: Vec::new(),
        optim: TrainConfig { epochs: 1, progress: false, ..Default::default() },
    };
    // 32 positions less the 16 prompt positions of the preset leave 16 tokens.
    let options = ClassificationOptions { max_length: 17 };
    let err = train_task::<Ad, Classification>(&plan, options, &Default::default(), |_| {})
        .expect_err("17 > 16");
    let message = err.to_string();
    assert!(
        message.contains("`max_length`: 17 is more than the 16 tokens the model takes (max_position_embeddings 32 less 16 prompt positions)"),
        "{message}"
    );
}
