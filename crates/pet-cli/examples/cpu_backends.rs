//! Times one training step (forward + backward + AdamW) of a BERT-like encoder (4 layers,
//! hidden 256, 4 heads, FFN 1024; batch 16, sequence 128, full fine-tuning) on each CPU backend
//! compiled in, to choose the default (`docs/decisions/0002-cpu-backend.md`).
//!
//! `cargo run --release -p pet-cli --features ndarray --example cpu_backends`

use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor};
use pet_core::testing::conformance::{Tuned, probe_loss};
use pet_core::testing::{TinyEncoderConfig, TinyInput};
use pet_core::{NoDelta, Trainability};

const BATCH: usize = 16;
const SEQ: usize = 128;
const STEPS: usize = 5;

fn time_steps<B: AutodiffBackend>(name: &str) {
    let device = B::Device::default();
    let config = TinyEncoderConfig::new("bert".to_string(), 1000, 256, 4, 4, 1024)
        .with_max_position_embeddings(512)
        .with_hidden_dropout_prob(0.0)
        .with_attention_probs_dropout_prob(0.0)
        .with_type_vocab_size(0)
        .with_with_pooler(false);
    let backbone = Trainability::Full.apply(config.init::<B>(&device));
    let mut model = Tuned { backbone, delta: NoDelta, backend: Default::default() };
    let mut optimizer = AdamWConfig::new().init::<B, _>();
    let ids: Vec<i64> = (0..BATCH * SEQ).map(|i| (i * 7 % 1000) as i64).collect();
    let input = || {
        TinyInput::new(
            Tensor::<B, 2, Int>::from_data(
                burn::tensor::TensorData::new(ids.clone(), [BATCH, SEQ]),
                &device,
            ),
            Tensor::ones([BATCH, SEQ], &device),
        )
    };
    let mut times = Vec::new();
    for step in 0..=STEPS {
        let started = Instant::now();
        let loss = probe_loss(model.forward(input()).hidden);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-4, model, grads);
        B::sync(&device).ok();
        if step > 0 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{name}: median {:.0} ms/step (min {:.0}, max {:.0}) over {STEPS} steps after 1 warm-up",
        times[STEPS / 2],
        times[0],
        times[STEPS - 1]
    );
}

fn main() {
    println!("threads: {}", std::thread::available_parallelism().map_or(1, |n| n.get()));
    time_steps::<burn::backend::Autodiff<burn::backend::Flex>>("flex");
    #[cfg(feature = "ndarray")]
    time_steps::<burn::backend::Autodiff<burn::backend::NdArray>>("ndarray");
}
