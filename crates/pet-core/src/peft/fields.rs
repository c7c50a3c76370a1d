//! Every field of PEFT 0.17's `LoraConfig`, `PromptTuningConfig` and `PrefixTuningConfig`, and
//! how pet handles it: read, harmless (informational, or a setting of initialization or run time
//! that a trained adapter's weights no longer depend on), or not implemented and accepted only at
//! its default. A field outside these lists is refused unless it holds a default-looking value
//! (`null`, `false`, `""`, `[]`, `{}`), so no field is silently ignored.
//!
//! | field | methods | handling |
//! |---|---|---|
//! | `peft_type`, `task_type` | all | read |
//! | `auto_mapping`, `base_model_name_or_path`, `revision`, `inference_mode`, `peft_version` | all | harmless |
//! | `modules_to_save` | all | read: the task head; modules of the backbone are refused ([`PeftAdapter::check_saved_modules`](super::PeftAdapter::check_saved_modules)) |
//! | `r`, `target_modules` (a list), `lora_alpha`, `lora_dropout`, `use_rslora` | LoRA | read |
//! | `init_lora_weights` | LoRA | `true`, `false`, `gaussian`, `eva`, `orthogonal` (initialization only); `pissa*`, `olora`, `corda`, `loftq` refused (they change the base weights) |
//! | `megatron_core`, `qalora_group_size`, `eva_config`, `corda_config`, `runtime_config` | LoRA | harmless (used only with a refused option, or at run time) |
//! | `exclude_modules`, `layers_to_transform`, `layers_pattern`, `rank_pattern`, `alpha_pattern`, `megatron_config`, `trainable_token_indices`, `loftq_config`, `layer_replication`, `target_parameters` | LoRA | default only (`null` / empty) |
//! | `fan_in_fan_out`, `use_dora`, `use_qalora`, `lora_bias` | LoRA | default only (`false`) |
//! | `bias` | LoRA | default only (`none`) |
//! | `num_virtual_tokens`, `token_dim` | prompt, prefix | read |
//! | `num_layers`, `num_attention_heads` | prefix | read (checked against the backbone) |
//! | `num_layers`, `num_attention_heads` | prompt | harmless (PEFT records the model's) |
//! | `num_transformer_submodules` | prompt, prefix | `1` or `null` only (encoders) |
//! | `prompt_tuning_init` | prompt | `RANDOM`, `TEXT`, `SAMPLE_VOCAB` (initialization only) |
//! | `prompt_tuning_init_text`, `tokenizer_name_or_path`, `tokenizer_kwargs` | prompt | harmless (initialization only) |
//! | `prefix_projection`, `encoder_hidden_size` | prefix | harmless (PEFT saves the projected table) |

use serde_json::Value;

use crate::peft::PeftType;

/// How pet handles one field.
#[derive(Clone, Copy, Debug)]
pub enum FieldRule {
    /// pet reads it (and checks its value where it reads it).
    Read,
    /// Any value is harmless for loading a trained adapter.
    Harmless,
    /// Not implemented: only values `accept` allows are taken; `reason` says why others are not.
    Default {
        /// Whether a value is the default (or another value pet implements).
        accept: fn(&Value) -> bool,
        /// What pet supports, for the message.
        supported: &'static str,
    },
}

fn null_or_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn null_or_false(value: &Value) -> bool {
    matches!(value, Value::Null | Value::Bool(false))
}

fn bias_none(value: &Value) -> bool {
    matches!(value, Value::Null) || value.as_str() == Some("none")
}

fn init_only(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) => true,
        Value::String(s) => ["gaussian", "eva", "orthogonal"].contains(&s.to_lowercase().as_str()),
        _ => false,
    }
}

fn one_submodule(value: &Value) -> bool {
    matches!(value, Value::Null) || value.as_u64() == Some(1)
}

fn prompt_init(value: &Value) -> bool {
    matches!(value, Value::Null)
        || value.as_str().is_some_and(|s| ["RANDOM", "TEXT", "SAMPLE_VOCAB"].contains(&s))
}

const NULL_OR_EMPTY: FieldRule =
    FieldRule::Default { accept: null_or_empty, supported: "only null or empty" };
const FALSE: FieldRule = FieldRule::Default { accept: null_or_false, supported: "only false" };

/// The rule of `field` in a config of `peft_type`, or `None` for a field PEFT 0.17 does not
/// have for that method.
pub fn rule(peft_type: PeftType, field: &str) -> Option<FieldRule> {
    use FieldRule::{Harmless, Read};
    let common = match field {
        "peft_type" | "task_type" | "modules_to_save" => Some(Read),
        "auto_mapping"
        | "base_model_name_or_path"
        | "revision"
        | "inference_mode"
        | "peft_version" => Some(Harmless),
        _ => None,
    };
    if common.is_some() {
        return common;
    }
    match peft_type {
        PeftType::Lora => match field {
            "r" | "target_modules" | "lora_alpha" | "lora_dropout" | "use_rslora" => Some(Read),
            "init_lora_weights" => Some(FieldRule::Default {
                accept: init_only,
                supported: "true, false, `gaussian`, `eva` or `orthogonal`; `pissa`, `olora`, `corda` and `loftq` change the base model's weights",
            }),
            "megatron_core" | "qalora_group_size" | "eva_config" | "corda_config"
            | "runtime_config" => Some(Harmless),
            "exclude_modules"
            | "layers_to_transform"
            | "layers_pattern"
            | "rank_pattern"
            | "alpha_pattern"
            | "megatron_config"
            | "trainable_token_indices"
            | "loftq_config"
            | "layer_replication"
            | "target_parameters" => Some(NULL_OR_EMPTY),
            "fan_in_fan_out" | "use_dora" | "use_qalora" | "lora_bias" => Some(FALSE),
            "bias" => Some(FieldRule::Default { accept: bias_none, supported: "only `none`" }),
            _ => None,
        },
        PeftType::PromptTuning | PeftType::PrefixTuning => {
            let prompt = peft_type == PeftType::PromptTuning;
            match field {
                "num_virtual_tokens" | "token_dim" => Some(Read),
                "num_layers" | "num_attention_heads" if prompt => Some(Harmless),
                "num_layers" | "num_attention_heads" => Some(Read),
                "num_transformer_submodules" => Some(FieldRule::Default {
                    accept: one_submodule,
                    supported: "only 1 (an encoder)",
                }),
                "prompt_tuning_init" if prompt => Some(FieldRule::Default {
                    accept: prompt_init,
                    supported: "RANDOM, TEXT or SAMPLE_VOCAB",
                }),
                "prompt_tuning_init_text" | "tokenizer_name_or_path" | "tokenizer_kwargs"
                    if prompt =>
                {
                    Some(Harmless)
                }
                "prefix_projection" | "encoder_hidden_size" if !prompt => Some(Harmless),
                _ => None,
            }
        }
    }
}

/// Why `value` of `field` is refused in a config of `peft_type`, or `None` when pet takes it.
pub fn refusal(peft_type: PeftType, field: &str, value: &Value) -> Option<String> {
    match rule(peft_type, field) {
        Some(FieldRule::Read | FieldRule::Harmless) => None,
        Some(FieldRule::Default { accept, .. }) if accept(value) => None,
        Some(FieldRule::Default { supported, .. }) => {
            Some(format!("{value} is not implemented by pet ({supported})"))
        }
        None if null_or_empty(value) || value == &Value::Bool(false) => None,
        None => Some(format!(
            "is not a field of PEFT 0.17's {} config that pet knows; refused rather than ignored",
            peft_type.as_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unimplemented_lora_fields_are_refused_at_any_value_but_their_default() {
        for (field, default, other) in [
            ("layers_to_transform", json!(null), json!([0, 1])),
            ("layers_pattern", json!(null), json!("layer")),
            ("exclude_modules", json!(null), json!(["key"])),
            ("rank_pattern", json!({}), json!({"query": 4})),
            ("alpha_pattern", json!({}), json!({"query": 4})),
            ("use_dora", json!(false), json!(true)),
            ("use_qalora", json!(false), json!(true)),
            ("fan_in_fan_out", json!(false), json!(true)),
            ("lora_bias", json!(false), json!(true)),
            ("bias", json!("none"), json!("all")),
            ("megatron_config", json!(null), json!({"tp": 2})),
            ("loftq_config", json!({}), json!({"loftq_bits": 4})),
            ("trainable_token_indices", json!(null), json!([3])),
            ("layer_replication", json!(null), json!([[0, 1]])),
            ("target_parameters", json!(null), json!(["w"])),
            ("init_lora_weights", json!(true), json!("pissa_niter_4")),
            ("init_lora_weights", json!("gaussian"), json!("olora")),
            ("init_lora_weights", json!(false), json!("loftq")),
            ("init_lora_weights", json!("eva"), json!("corda")),
        ] {
            assert_eq!(refusal(PeftType::Lora, field, &default), None, "{field}");
            let reason = refusal(PeftType::Lora, field, &other).expect(field);
            assert!(reason.contains("not implemented"), "{field}: {reason}");
        }
        for (field, value) in [
            ("use_rslora", json!(true)),
            ("megatron_core", json!("megatron.core")),
            ("eva_config", json!({"rho": 2})),
            ("runtime_config", json!({"ephemeral_gpu_offload": true})),
            ("init_lora_weights", json!("orthogonal")),
            ("base_model_name_or_path", json!("bert-base-uncased")),
            ("some_future_field", json!(null)),
        ] {
            assert_eq!(refusal(PeftType::Lora, field, &value), None, "{field}");
        }
        let unknown = refusal(PeftType::Lora, "some_future_field", &json!(3)).expect("unknown");
        assert!(unknown.contains("LORA"), "{unknown}");
    }

    #[test]
    fn prompt_learning_fields_follow_their_method() {
        let prompt = PeftType::PromptTuning;
        let prefix = PeftType::PrefixTuning;
        assert_eq!(refusal(prompt, "prompt_tuning_init", &json!("TEXT")), None);
        assert!(refusal(prompt, "prompt_tuning_init", &json!("KAIMING")).is_some());
        assert!(refusal(prefix, "num_transformer_submodules", &json!(2)).is_some());
        assert_eq!(refusal(prefix, "num_transformer_submodules", &json!(1)), None);
        assert_eq!(refusal(prefix, "prefix_projection", &json!(true)), None);
        // A LoRA field in a prefix config is not one of its fields.
        assert!(refusal(prefix, "r", &json!(8)).is_some());
        assert!(refusal(prompt, "encoder_hidden_size", &json!(16)).is_some());
    }
}
