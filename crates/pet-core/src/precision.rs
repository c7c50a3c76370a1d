//! The precision a backbone's linear layers compute in at inference.
//!
//! [`Precision::Bf16`] stores the weight of every linear site (query, key, value, attention
//! output, both feed-forward projections: over 95% of an encoder's multiply-adds) in bf16;
//! `pet_kernels::linear` then rounds the activations to bf16 as well and sums the products in
//! `f32`: on AVX512-BF16 where the CPU has it, as `f32` products of the rounded values on the
//! lower levels of pet's kernels (the same numerics, no speed-up). Everything else (embeddings, layer norms,
//! attention scores and softmax, deltas, heads) stays in `f32`: the split PyTorch's CPU autocast
//! makes too. It is an inference setting: a bf16 weight takes no `f32` gradient.

use burn::tensor::DType;
use burn::tensor::backend::{Backend, DTypeUsage};
use serde::{Deserialize, Serialize};

use crate::{Backbone, PetError};

/// The precision of a backbone's linear sites.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// `f32` weights and products (what every checkpoint holds).
    #[default]
    F32,
    /// bf16 weights and activations, `f32` sums.
    Bf16,
}

impl Precision {
    /// The element type of a linear site's weight in this precision.
    pub fn weight_dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
        }
    }

    /// `backbone` with every linear site's weight cast to [`Precision::weight_dtype`].
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] naming `precision` when the backend cannot store the weight
    /// type (Burn's `ndarray` has no bf16), before any weight is cast.
    pub fn apply<B: Backend, M: Backbone<B>>(self, backbone: M) -> Result<M, PetError> {
        let dtype = self.weight_dtype();
        let sites = backbone.linear_sites();
        if let Some(first) = sites.first() {
            let device = backbone.linear_weight(first.site).device();
            if !B::dtype_usage(&device, dtype).contains(DTypeUsage::Storage) {
                return Err(PetError::InvalidConfig {
                    field: "precision".into(),
                    reason: format!(
                        "the `{}` backend cannot store {self} tensors; use `f32` on it, or {self} \
                         on a backend that stores them (burn-flex, `--device cpu`)",
                        B::name(&device)
                    ),
                });
            }
        }
        Ok(sites.into_iter().fold(backbone, |backbone, info| {
            let weight = backbone.linear_weight(info.site);
            if weight.dtype() == dtype {
                return backbone;
            }
            backbone.with_linear_weight(info.site, weight.cast(dtype))
        }))
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        })
    }
}

impl std::str::FromStr for Precision {
    type Err = PetError;

    /// `f32` or `bf16`.
    fn from_str(text: &str) -> Result<Self, PetError> {
        match text {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            other => Err(PetError::InvalidConfig {
                field: "precision".into(),
                reason: format!("`{other}` is not a precision; use `f32` or `bf16`"),
            }),
        }
    }
}
