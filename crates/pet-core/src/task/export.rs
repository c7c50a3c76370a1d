//! A task model's delta as a PEFT adapter: LoRA (`LORA`), a deep prefix (`PREFIX_TUNING`, the
//! reparameterization materialized) or a soft prompt (`PROMPT_TUNING`), each alone on a frozen
//! backbone. Anything else (adapters, BitFit, partial or full tuning, combinations) has no PEFT
//! form and is refused by its method's name.

use burn::tensor::backend::Backend;

use crate::backbone::Backbone;
use crate::delta::set::{DeltaSet, DeltaSpec};
use crate::error::{PetError, Result};
use crate::peft::PeftAdapter;
use crate::trainability::Trainability;

/// The PEFT adapter of `delta` (built from `spec`, trained as method `method`) on `backbone`,
/// LoRA keys under `base_model.model.<model_prefix>` (e.g. `bert.`, the base model attribute
/// of a transformers task model).
///
/// # Errors
/// [`PetError::InvalidConfig`] naming `method` when PEFT cannot hold it.
pub fn peft_adapter<B: Backend, M: Backbone<B>>(
    method: &str,
    spec: &DeltaSpec,
    delta: &DeltaSet<B>,
    backbone: &M,
    model_prefix: &str,
) -> Result<PeftAdapter> {
    let refuse = |why: &str| {
        PetError::config(
            "method",
            format!(
                "`{method}` cannot be written as a PEFT adapter: {why}; PEFT holds LoRA, prefix \
                 tuning or prompt tuning alone on a frozen backbone"
            ),
        )
    };
    if spec.trainability != Trainability::Frozen {
        return Err(refuse("it trains backbone parameters"));
    }
    if delta.adapters.is_some() {
        return Err(refuse("it has bottleneck adapters"));
    }
    let shape = backbone.shape();
    match (&delta.lora, &delta.prefix, &delta.prompt) {
        (Some(lora), None, None) => {
            Ok(PeftAdapter::from_lora(lora, &backbone.linear_sites(), model_prefix))
        }
        (None, Some(prefix), None) => Ok(PeftAdapter::from_prefix(prefix)),
        (None, None, Some(prompt)) => {
            Ok(PeftAdapter::from_prompt(prompt, shape.encoder_layers, shape.num_heads))
        }
        (None, None, None) => Err(refuse("it has no delta")),
        _ => Err(refuse("it combines several deltas")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestInner as B, TinyEncoderConfig};

    #[test]
    fn methods_peft_cannot_hold_are_refused_by_name() {
        let device = Default::default();
        let backbone = TinyEncoderConfig::tiny().init::<B>(&device);
        for method in ["adapter", "bitfit", "prefix+lora", "full"] {
            let spec = DeltaSpec::preset(method).expect("preset");
            let delta = spec.build(&backbone, &device).expect("deltas");
            let err =
                peft_adapter(method, &spec, &delta, &backbone, "").expect_err(method).to_string();
            assert!(err.contains(&format!("`{method}`")) && err.contains("PEFT"), "{err}");
        }
    }

    #[test]
    fn a_lora_delta_becomes_a_lora_adapter() {
        let device = Default::default();
        let backbone = TinyEncoderConfig::tiny().init::<B>(&device);
        let spec = DeltaSpec::preset("lora").expect("preset");
        let delta = spec.build(&backbone, &device).expect("deltas");
        let adapter = peft_adapter("lora", &spec, &delta, &backbone, "bert.").expect("lora");
        assert_eq!(adapter.peft_type().expect("type"), crate::peft::PeftType::Lora);
        assert!(adapter.tensors.keys().all(|k| k.starts_with("base_model.model.bert.")));
    }
}
