//! The standard conformance cases of the delta methods on the tiny ViT (prompt tuning, the
//! reparameterized deep prefix, LoRA, Houlsby adapters, BitFit, partial tuning and two
//! combinations), and VPT-deep: frozen parameters get no gradient, one step changes only what
//! trains, trainable counts match the formulas, checkpoints round-trip, composition with the
//! identity delta.

use burn::tensor::Tensor;
use pet_core::testing::TestBackend;
use pet_vision::vit::{ViT, ViTConfig, ViTInput};

type Device = burn::tensor::Device<TestBackend>;

/// Two 8 x 8 RGB images, fixed values.
fn images(device: &Device) -> ViTInput<TestBackend> {
    let values: Vec<f32> =
        (0..2 * 3 * 8 * 8).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
    ViTInput {
        pixel_values: Tensor::<TestBackend, 1>::from_floats(values.as_slice(), device)
            .reshape([2, 3, 8, 8]),
    }
}

pet_core::backbone_conformance!(
    backbone: |d: &Device| ViTConfig::tiny().init(true, d) => ViT<TestBackend>,
    input: |d: &Device| images(d),
    lora_targets: ["query", "value"],
    intermediate_size: 24,
);

fn vpt_deep_config(backbone: &ViT<TestBackend>) -> pet_core::delta::deep_prompt::DeepPromptConfig {
    let shape = pet_core::Backbone::shape(backbone);
    let patch = backbone.config.patch_size;
    pet_core::delta::deep_prompt::DeepPromptConfig {
        prompt: pet_core::delta::prompt::PromptTuningConfig::new(3, shape.hidden_size)
            .with_prompt_tuning_init(pet_core::delta::prompt::PromptInit::VptUniform {
                patch_area: patch * patch,
            }),
        num_layers: shape.encoder_layers,
        prompt_dropout: 0.0,
    }
}

pet_core::delta_conformance!(
    vpt_deep,
    backbone: |d: &Device| ViTConfig::tiny().init(true, d) => ViT<TestBackend>,
    input: |d: &Device| images(d),
    delta: |b: &ViT<TestBackend>, d: &Device| vpt_deep_config(b).init(d).expect("vpt")
        => pet_core::delta::deep_prompt::DeepPrompt<TestBackend>,
    trainability: pet_core::Trainability::Frozen,
    params: |b: &ViT<TestBackend>| vpt_deep_config(b).num_params(),
    identity_at_init: false,
    merge: None,
);
