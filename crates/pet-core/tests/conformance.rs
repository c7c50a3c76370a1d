//! The conformance suite for every delta method of pet-core on the tiny encoder: the standard
//! cases of [`pet_core::backbone_conformance!`], and the variants only the tiny encoder runs
//! (vocabulary-initialized prompts, a plain deep prefix, Pfeiffer and parallel adapters).

use pet_core::Trainability;
use pet_core::delta::adapter::{AdapterConfig, Adapters};
use pet_core::delta::prefix::{PrefixTuning, PrefixTuningConfig};
use pet_core::delta::prompt::{PromptInit, PromptTuningConfig, SoftPrompt};
use pet_core::testing::conformance::conformance_input;
use pet_core::testing::{TestBackend, TinyEncoder, TinyEncoderConfig, TinyInput};

type Device = burn::tensor::Device<TestBackend>;
type Encoder = TinyEncoder<TestBackend>;

fn backbone(device: &Device) -> TinyEncoder<TestBackend> {
    TinyEncoderConfig::tiny().init(device)
}

fn input(device: &Device) -> TinyInput<TestBackend> {
    conformance_input(2, device)
}

pet_core::backbone_conformance!(
    backbone: backbone => Encoder,
    input: input,
    lora_targets: ["query", "value"],
    intermediate_size: 32,
);

pet_core::delta_conformance!(
    soft_prompt_vocabulary_init,
    backbone: backbone => Encoder,
    input: input,
    delta: |b: &TinyEncoder<TestBackend>, d: &Device| PromptTuningConfig::new(3, 16)
        .with_prompt_tuning_init(PromptInit::SampleVocab { seed: 3 })
        .init(b.word_embeddings().as_ref(), d)
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
