//! The conformance suite for every delta method of pet-core on the tiny encoder.

use pet_core::Trainability;
use pet_core::delta::adapter::{AdapterConfig, Adapters};
use pet_core::delta::lora::{Lora, LoraConfig};
use pet_core::delta::prefix::{PrefixTuning, PrefixTuningConfig};
use pet_core::delta::prompt::{PromptInit, PromptTuningConfig, SoftPrompt};
use pet_core::params::param_entries;
use pet_core::testing::{TestBackend, TinyEncoder, TinyEncoderConfig, TinyInput};

type Device = burn::tensor::Device<TestBackend>;
type Encoder = TinyEncoder<TestBackend>;

fn backbone(device: &Device) -> TinyEncoder<TestBackend> {
    TinyEncoderConfig::tiny().init(device)
}

fn input(device: &Device) -> TinyInput<TestBackend> {
    TinyInput::new(
        burn::tensor::Tensor::from_data([[2, 7, 11, 5, 9], [2, 4, 8, 3, 0]], device),
        burn::tensor::Tensor::from_data(
            [[1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 0.0]],
            device,
        ),
    )
}

fn backbone_params(model: &TinyEncoder<TestBackend>, select: &dyn Fn(&str) -> bool) -> usize {
    param_entries::<TestBackend, _>(model)
        .iter()
        .filter(|e| select(&e.path))
        .map(|e| e.numel())
        .sum()
}

pet_core::delta_conformance!(
    soft_prompt,
    backbone: backbone => Encoder,
    input: input,
    delta: |b: &TinyEncoder<TestBackend>, d: &Device| PromptTuningConfig::new(4, 16).init(&b.word_embeddings(), d).expect("prompt") => SoftPrompt<TestBackend>,
    trainability: Trainability::Frozen,
    params: |_: &TinyEncoder<TestBackend>| PromptTuningConfig::new(4, 16).num_params(),
    identity_at_init: false,
    merge: None,
);

pet_core::delta_conformance!(
    soft_prompt_vocabulary_init,
    backbone: backbone => Encoder,
    input: input,
    delta: |b: &TinyEncoder<TestBackend>, d: &Device| PromptTuningConfig::new(3, 16)
        .with_prompt_tuning_init(PromptInit::SampleVocab { seed: 3 })
        .init(&b.word_embeddings(), d)
        .expect("prompt") => SoftPrompt<TestBackend>,
    trainability: Trainability::Frozen,
    params: |_: &TinyEncoder<TestBackend>| 3 * 16,
    identity_at_init: false,
    merge: None,
);

pet_core::delta_conformance!(
    deep_prefix,
    backbone: backbone => Encoder,
    input: input,
    delta: |b: &TinyEncoder<TestBackend>, d: &Device| PrefixTuningConfig::for_backbone(b.shape(), 3).init(d).expect("prefix") => PrefixTuning<TestBackend>,
    trainability: Trainability::Frozen,
    params: |b: &TinyEncoder<TestBackend>| PrefixTuningConfig::for_backbone(b.shape(), 3).num_params(),
    identity_at_init: false,
    merge: None,
);

pet_core::delta_conformance!(
    p_tuning_v2_reparameterized,
    backbone: backbone => Encoder,
    input: input,
    delta: |b: &TinyEncoder<TestBackend>, d: &Device| PrefixTuningConfig::for_backbone(b.shape(), 3)
        .with_prefix_projection(true)
        .with_encoder_hidden_size(8)
        .init(d)
        .expect("prefix") => PrefixTuning<TestBackend>,
    trainability: Trainability::Frozen,
    params: |b: &TinyEncoder<TestBackend>| {
        // n*d + d*h + h + h*(L*2*d) + L*2*d with n=3, d=16, h=8, L=2
        let formula = 3 * 16 + 16 * 8 + 8 + 8 * 64 + 64;
        assert_eq!(PrefixTuningConfig::for_backbone(b.shape(), 3).with_prefix_projection(true).with_encoder_hidden_size(8).num_params(), formula);
        formula
    },
    identity_at_init: false,
    merge: None,
);

pet_core::delta_conformance!(
    lora,
    backbone: backbone => Encoder,
    input: input,
    delta: |b: &TinyEncoder<TestBackend>, d: &Device| LoraConfig::new(4).with_target_modules(vec!["query".into(), "value".into(), "output.dense".into()]).init(b, d).expect("lora") => Lora<TestBackend>,
    trainability: Trainability::Frozen,
    params: |b: &TinyEncoder<TestBackend>| {
        // Per layer: query and value (16 -> 16) and attention.output.dense and output.dense
        // (16 -> 16, 32 -> 16): r * (in + out) each.
        let formula = 2 * 4 * ((16 + 16) + (16 + 16) + (16 + 16) + (32 + 16));
        let config = LoraConfig::new(4).with_target_modules(vec!["query".into(), "value".into(), "output.dense".into()]);
        assert_eq!(config.num_params(&b.linear_sites()).expect("sites"), formula);
        formula
    },
    identity_at_init: true,
    merge: Some(|lora: &Lora<TestBackend>, b: Encoder| lora.merge(b)),
);

pet_core::delta_conformance!(
    houlsby_adapter,
    backbone: backbone => Encoder,
    input: input,
    delta: |b: &TinyEncoder<TestBackend>, d: &Device| AdapterConfig::houlsby(4).init(b.shape(), d).expect("adapter") => Adapters<TestBackend>,
    trainability: Trainability::Frozen,
    params: |_: &TinyEncoder<TestBackend>| 2 * 2 * (2 * 16 * 4 + 4 + 16),
    identity_at_init: true,
    merge: None,
);

pet_core::delta_conformance!(
    pfeiffer_adapter,
    backbone: backbone => Encoder,
    input: input,
    delta: |b: &TinyEncoder<TestBackend>, d: &Device| AdapterConfig::pfeiffer(2).init(b.shape(), d).expect("adapter") => Adapters<TestBackend>,
    trainability: Trainability::Frozen,
    params: |b: &TinyEncoder<TestBackend>| AdapterConfig::pfeiffer(2).num_params(b.shape()).expect("count"),
    identity_at_init: true,
    merge: None,
);

pet_core::delta_conformance!(
    parallel_adapter,
    backbone: backbone => Encoder,
    input: input,
    delta: |b: &TinyEncoder<TestBackend>, d: &Device| AdapterConfig::parallel(4).init(b.shape(), d).expect("adapter") => Adapters<TestBackend>,
    trainability: Trainability::Frozen,
    params: |_: &TinyEncoder<TestBackend>| 2 * (2 * 16 * 4 + 4 + 16),
    identity_at_init: true,
    merge: None,
);

pet_core::delta_conformance!(
    bitfit,
    backbone: backbone => Encoder,
    input: input,
    delta: |_: &TinyEncoder<TestBackend>, _: &Device| NoDelta => NoDelta,
    trainability: Trainability::BiasOnly,
    params: |b: &TinyEncoder<TestBackend>| backbone_params(b, &|p| p.ends_with(".bias") || p.ends_with(".beta")),
    identity_at_init: true,
    merge: None,
);

pet_core::delta_conformance!(
    partial_last_layer,
    backbone: backbone => Encoder,
    input: input,
    delta: |_: &TinyEncoder<TestBackend>, _: &Device| NoDelta => NoDelta,
    trainability: Trainability::LastLayers(1),
    params: |b: &TinyEncoder<TestBackend>| backbone_params(b, &|p| p.starts_with("encoder.layer.1.")),
    identity_at_init: true,
    merge: None,
);

pet_core::delta_conformance!(
    prefix_with_lora_combination,
    backbone: backbone => Encoder,
    input: input,
    delta: |b: &TinyEncoder<TestBackend>, d: &Device| (
        PrefixTuningConfig::for_backbone(b.shape(), 2).init(d).expect("prefix"),
        LoraConfig::new(2).init(b, d).expect("lora"),
    ) => (PrefixTuning<TestBackend>, Lora<TestBackend>),
    trainability: Trainability::Frozen,
    params: |b: &TinyEncoder<TestBackend>| PrefixTuningConfig::for_backbone(b.shape(), 2).num_params()
        + LoraConfig::new(2).num_params(&b.linear_sites()).expect("sites"),
    identity_at_init: false,
    merge: None,
);

pet_core::delta_conformance!(
    prompt_with_adapter_and_bitfit,
    backbone: backbone => Encoder,
    input: input,
    delta: |b: &TinyEncoder<TestBackend>, d: &Device| (
        PromptTuningConfig::new(2, 16).init(&b.word_embeddings(), d).expect("prompt"),
        AdapterConfig::pfeiffer(4).init(b.shape(), d).expect("adapter"),
    ) => (SoftPrompt<TestBackend>, Adapters<TestBackend>),
    trainability: Trainability::BiasOnly,
    params: |b: &TinyEncoder<TestBackend>| 2 * 16
        + AdapterConfig::pfeiffer(4).num_params(b.shape()).expect("count")
        + backbone_params(b, &|p| p.ends_with(".bias") || p.ends_with(".beta")),
    identity_at_init: false,
    merge: None,
);
