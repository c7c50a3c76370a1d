//! pet-nlp: P-Tuning v2 and the delta family on Hugging Face text encoders.
//!
//! Backbones read a Hugging Face folder (`config.json`, `model.safetensors`) with strict key
//! checking and expose every seam of pet-core: [`bert`] (BERT and its checkpoints such as
//! all-MiniLM-L6-v2) and [`roberta`] (RoBERTa's padding-offset position ids), both
//! configurations of pet-core's [`PostNormEncoder`](pet_core::blocks::PostNormEncoder), and
//! [`deberta`] (DeBERTa-v2 / v3). [`load_encoder`] reads any of them as an [`NlpBackbone`], the
//! backbone of the task models in [`tasks`].
//!
//! # Quick start
//!
//! P-Tuning v2 on a Hugging Face folder, trained, saved, restored and run (the whole program is
//! `examples/ptuning_v2_classifier.rs`: `cargo run -p pet-nlp --example ptuning_v2_classifier
//! [MODEL_FOLDER]`):
//!
//! ```ignore
//! let plan = TrainPlan { folder, train, dev, method: "ptuning-v2".into(),
//!     spec: DeltaSpec::preset("ptuning-v2")?, output: "runs/x".into(), overwrite: false,
//!     /* ... */ };
//! let options = ClassificationOptions::default();
//! let summary = train_task::<B, Classification>(&plan, options, &device, |_| {})?;
//! let delta = Path::new("runs/x/delta.safetensors");
//! let restored = restore_task::<B, Classification>(&folder, delta, &device)?;
//! let mut lines: Vec<serde_json::Value> = Vec::new();
//! restored.task.predict(&restored.model, Path::new("rows.jsonl"), 32, &mut lines)?;
//! ```
//!
//! Lower down, [`load_encoder`] gives the backbone to run with any pet-core delta:
//! `let (encoder, folder, report) = load_encoder::<B>(dir, &device)?;`.

pub mod backbone;
pub mod batch;
pub mod bert;
pub mod data;
pub mod deberta;
pub mod error;
pub mod folder;
pub mod heads;
pub mod input;
pub mod roberta;
pub mod tasks;
pub mod tokenize;

pub use backbone::NlpBackbone;
pub use error::{NlpError, Result};
pub use folder::{EncoderFolder, load_encoder, load_post_norm};
