//! Feed-forward activations, by their Hugging Face `hidden_act` names.

use burn::tensor::activation::{relu, silu};
use burn::tensor::{Tensor, backend::Backend};
use pet_kernels::gelu;
use serde::{Deserialize, Serialize};

/// An activation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// Exact GELU, `x * Phi(x)` (`gelu`).
    #[serde(rename = "gelu")]
    Gelu,
    /// Tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh`).
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh")]
    GeluTanh,
    /// `max(0, x)` (`relu`).
    #[serde(rename = "relu")]
    Relu,
    /// `x * sigmoid(x)` (`silu`, `swish`).
    #[serde(rename = "silu", alias = "swish")]
    Silu,
    /// `tanh` (RoBERTa's classification head, a DeBERTa `pooler_hidden_act` option).
    #[serde(rename = "tanh")]
    Tanh,
}

impl Activation {
    /// Applies the activation element-wise.
    pub fn forward<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::Gelu => gelu(x),
            Self::GeluTanh => burn::tensor::activation::gelu_approximate(x),
            Self::Relu => relu(x),
            Self::Silu => silu(x),
            Self::Tanh => x.tanh(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugging_face_names_parse() {
        let parse = |s: &str| serde_json::from_str::<Activation>(&format!("\"{s}\"")).ok();
        assert_eq!(parse("gelu"), Some(Activation::Gelu));
        assert_eq!(parse("gelu_new"), Some(Activation::GeluTanh));
        assert_eq!(parse("gelu_pytorch_tanh"), Some(Activation::GeluTanh));
        assert_eq!(parse("swish"), Some(Activation::Silu));
        assert_eq!(parse("tanh"), Some(Activation::Tanh));
        assert_eq!(parse("mish"), None);
    }
}
