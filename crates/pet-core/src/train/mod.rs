//! Training: AdamW over trainable parameters only, linear warmup and decay, global-norm gradient
//! clipping, gradient accumulation, seeded runs, evaluation every epoch with best-epoch
//! selection, a progress bar with loss and throughput, and metrics as JSON lines.
//!
//! pet runs its own loop rather than Burn's `Learner`: the loop is short, and owning it gives
//! PyTorch's global-norm clipping (Burn clips each parameter on its own), best-epoch selection
//! on any metric, and our JSON-lines log (see `docs/decisions/0003-training-loop.md`).

mod clip;
mod metrics_log;
mod schedule;
mod trainer;

pub use clip::clip_global_norm;
pub use metrics_log::MetricsLog;
pub use schedule::LinearWarmupDecay;
pub use trainer::{EpochReport, Evaluation, TrainConfig, TrainOutcome, TrainTask, fit};
