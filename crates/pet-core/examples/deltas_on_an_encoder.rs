//! pet-core on its own: a BERT-style encoder with random weights, a frozen backbone, a deep
//! prefix (P-Tuning v2) plus LoRA as one delta, a parameter report, one optimizer step on the
//! delta, a delta checkpoint saved and restored, and LoRA merged into the weights.
//!
//! Run with `cargo run -p pet-core --example deltas_on_an_encoder`.

use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use pet_core::blocks::{EncoderInput, PostNormEncoder, PostNormEncoderConfig};
use pet_core::checkpoint::DeltaCheckpoint;
use pet_core::delta::set::{DeltaSet, DeltaSpec};
use pet_core::{Backbone, ParamReport};

type Train = Autodiff<Flex>;

/// The encoder and its delta as one module, so the optimizer sees both (only the delta trains).
#[derive(Module, Debug)]
struct Tuned<B: Backend> {
    backbone: PostNormEncoder<B>,
    delta: DeltaSet<B>,
}

fn main() -> pet_core::Result<()> {
    let device = Default::default();
    // A 2-layer BERT with random weights (a Hugging Face folder loads through pet-nlp instead),
    // dropout off so that the forward passes below are deterministic.
    let config = PostNormEncoderConfig::new("bert".into(), 100, 32, 2, 4, 64)
        .with_hidden_dropout_prob(0.0)
        .with_attention_probs_dropout_prob(0.0);
    let spec = DeltaSpec::preset("ptuning-v2+lora")?;
    let backbone = spec.trainability.apply(config.init::<Train>(&device));
    let delta = spec.build(&backbone, &device)?;
    let model = Tuned { backbone, delta };
    println!("{}", ParamReport::of::<Train, _>(&model, 1));

    // One step on a toy objective: pull the pooled output of two sentences towards zero.
    let input = || two_sentences::<Train>(&device);
    let pooled = |m: &Tuned<Train>| m.backbone.forward_with(input(), &m.delta).pooled;
    let loss = pooled(&model).expect("BERT has a pooler").powf_scalar(2.0).mean();
    println!("loss before the step: {:.6}", loss.clone().into_scalar());
    let grads = GradientsParams::from_grads::<Train, _>(loss.backward(), &model);
    let mut optimizer = AdamWConfig::new().init::<Train, Tuned<Train>>();
    let model = optimizer.step(1e-2, model, grads);
    let loss = pooled(&model).expect("BERT has a pooler").powf_scalar(2.0).mean();
    println!("loss after the step:  {:.6}", loss.into_scalar());

    // The delta alone goes into a checkpoint (a few KiB) and onto a fresh copy of the backbone.
    let path = std::env::temp_dir().join("pet-core-example-delta.safetensors");
    let identity = model.backbone.identity();
    let checkpoint = DeltaCheckpoint::capture::<Train, _>(
        &model,
        &|entry| entry.trainable,
        serde_json::to_value(&spec).unwrap_or_default(),
        identity.clone(),
    );
    checkpoint.save(&path)?;
    println!("saved {} delta parameters to {}", checkpoint.num_params(), path.display());
    let fresh =
        Tuned { delta: spec.build(&model.backbone, &device)?, backbone: model.backbone.clone() };
    let restored = DeltaCheckpoint::load(&path)?.apply::<Train, _>(fresh, &identity, &["delta"])?;
    let (a, b) = (pooled(&model).expect("pooled"), pooled(&restored).expect("pooled"));
    println!("restored delta, max |difference|: {}", (a - b).abs().max().into_scalar());

    // LoRA merges into the linear weights; the prefix stays a delta.
    if let Some(lora) = &restored.delta.lora {
        let merged = lora.merge(restored.backbone.clone());
        let without_lora = DeltaSet { lora: None, ..restored.delta.clone() };
        let merged_out = merged.forward_with(input(), &without_lora).hidden;
        let delta_out = restored.backbone.forward_with(input(), &restored.delta).hidden;
        let diff = (merged_out - delta_out).abs().max().into_scalar();
        println!("LoRA merged against LoRA as a delta, max |difference|: {diff}");
    }
    std::fs::remove_file(&path).ok();
    Ok(())
}

/// Two sentences of token ids, the second one padded.
fn two_sentences<B: Backend>(device: &B::Device) -> EncoderInput<B> {
    EncoderInput::new(
        Tensor::<B, 2, Int>::from_data([[2, 7, 11, 3], [2, 5, 3, 0]], device),
        Tensor::from_data([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]], device),
    )
}
