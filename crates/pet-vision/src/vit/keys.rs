//! ViT's key map: Burn's module paths are transformers' state-dict keys already, but for the
//! layer norms' parameter names (`gamma`, `beta` for `weight`, `bias`); linear weights are
//! transposed, the patch projection's convolution kernel is not (Burn and PyTorch both hold
//! `[out, in, kh, kw]`).

use pet_core::blocks::hf_keys::{KeyMap, is_linear_weight};
use pet_core::params::ParamEntry;

/// The key map of [`ViT`](crate::vit::ViT).
#[derive(Clone, Copy, Debug, Default)]
pub struct ViTKeys;

impl KeyMap for ViTKeys {
    fn hf_key(&self, path: &str) -> String {
        match path.rsplit_once('.') {
            Some((module, "gamma")) => format!("{module}.weight"),
            Some((module, "beta")) => format!("{module}.bias"),
            _ => path.to_string(),
        }
    }

    fn transposed(&self, entry: &ParamEntry) -> bool {
        is_linear_weight(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_parameters_take_pytorchs_names_and_others_keep_theirs() {
        let keys = ViTKeys;
        assert_eq!(
            keys.hf_key("encoder.layer.0.layernorm_before.gamma"),
            "encoder.layer.0.layernorm_before.weight"
        );
        assert_eq!(keys.hf_key("layernorm.beta"), "layernorm.bias");
        assert_eq!(
            keys.hf_key("encoder.layer.1.attention.attention.query.weight"),
            "encoder.layer.1.attention.attention.query.weight"
        );
        assert_eq!(keys.hf_key("embeddings.cls_token"), "embeddings.cls_token");
    }
}
