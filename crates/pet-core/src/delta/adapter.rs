//! Bottleneck adapters: Houlsby (sequential, after attention and FFN), Pfeiffer (sequential,
//! after FFN only) and parallel (beside the FFN, scaled).
//!
//! Papers: Houlsby et al., 2019, "Parameter-Efficient Transfer Learning for NLP"; Pfeiffer et
//! al., 2021, "AdapterFusion"; He et al., 2022, "Towards a Unified View of Parameter-Efficient
//! Transfer Learning" (parallel adapter). Reference: AdapterHub's `adapters` (`reduction_factor`,
//! `non_linearity`, `mh_adapter`, `output_adapter`, `is_parallel`, `scaling`).
//!
//! An adapter is `up(act(down(x)))` with `down: hidden -> hidden / reduction_factor` and `up`
//! back to hidden; `up` starts at zero so the adapted model starts as the backbone. Sequential
//! adapters see the sub-layer output `h` and return `h + adapter(h)`; a parallel adapter sees the
//! sub-layer input `x` and returns `h + scaling * adapter(x)`. Both act before the residual sum
//! and layer norm.
//!
//! Seam: sub-layer outputs. Parameters per adapted sub-layer: `2 * hidden * m + m + hidden`
//! with `m = hidden / reduction_factor`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::{gelu, relu};
use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::config_check::HeaderCheck;
use crate::delta::Delta;
use crate::error::{PetError, Result};
use crate::seam::{BackboneShape, SublayerKind, SublayerSite};

/// The adapter's non-linearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterActivation {
    /// `max(0, x)`
    Relu,
    /// Exact (erf) GELU.
    Gelu,
    /// `tanh(x)`
    Tanh,
}

/// Bottleneck adapter configuration, with AdapterHub's field names.
#[derive(Config, Debug)]
pub struct AdapterConfig {
    /// Hidden size divided by the bottleneck size.
    pub reduction_factor: usize,
    /// Non-linearity between the projections.
    #[config(default = "AdapterActivation::Relu")]
    pub non_linearity: AdapterActivation,
    /// Adapter after the attention sub-layer.
    #[config(default = true)]
    pub mh_adapter: bool,
    /// Adapter after the feed-forward sub-layer.
    #[config(default = true)]
    pub output_adapter: bool,
    /// Parallel to the sub-layer instead of after it.
    #[config(default = false)]
    pub is_parallel: bool,
    /// Output scaling (parallel adapters use 4.0 in He et al.).
    #[config(default = 1.0)]
    pub scaling: f64,
}

impl AdapterConfig {
    /// Houlsby: sequential, after attention and after the FFN.
    pub fn houlsby(reduction_factor: usize) -> Self {
        Self::new(reduction_factor)
    }

    /// Pfeiffer: sequential, after the FFN only.
    pub fn pfeiffer(reduction_factor: usize) -> Self {
        Self::new(reduction_factor).with_mh_adapter(false)
    }

    /// Parallel (He et al.): beside the FFN, scaled by 4.
    pub fn parallel(reduction_factor: usize) -> Self {
        Self::new(reduction_factor).with_mh_adapter(false).with_is_parallel(true).with_scaling(4.0)
    }

    fn kinds(&self) -> Vec<SublayerKind> {
        let mut kinds = Vec::new();
        if self.mh_adapter {
            kinds.push(SublayerKind::Attention);
        }
        if self.output_adapter {
            kinds.push(SublayerKind::FeedForward);
        }
        kinds
    }

    fn bottleneck(&self, hidden: usize) -> Result<usize> {
        if self.reduction_factor == 0 || hidden / self.reduction_factor == 0 {
            return Err(PetError::config(
                "reduction_factor",
                format!("{} leaves no bottleneck for hidden size {hidden}", self.reduction_factor),
            ));
        }
        Ok(hidden / self.reduction_factor)
    }

    /// Checks that the tensors under `base` (`delta.adapters.`) hold the adapters this config
    /// builds for a backbone of `shape`, in Burn's layout (`adapters.N.down` `[hidden, m]`,
    /// `adapters.N.up` `[m, hidden]`, with biases), before they are allocated. `field` prefixes
    /// the config's field names in errors (`delta.adapter.`).
    ///
    /// # Errors
    /// As [`AdapterConfig::init`]; as [`HeaderCheck::tensor`], naming
    /// `{field}reduction_factor` for another bottleneck and `{field}variant` for an adapter the
    /// file lacks.
    pub fn check_tensors(
        &self,
        shape: BackboneShape,
        check: &HeaderCheck<'_>,
        base: &str,
        field: &str,
    ) -> Result<()> {
        let reduction = format!("{field}reduction_factor");
        let variant = format!("{field}variant");
        let m = (self.bottleneck(shape.hidden_size)?, reduction.as_str());
        let h = (shape.hidden_size, "backbone");
        let count = shape.encoder_layers.saturating_mul(self.kinds().len());
        for index in 0..count {
            let key = |name: &str| format!("{base}adapters.{index}.{name}");
            check.tensor(&key("down.weight"), &variant, &[h, m])?;
            check.tensor(&key("down.bias"), &variant, &[m])?;
            check.tensor(&key("up.weight"), &variant, &[m, h])?;
            check.tensor(&key("up.bias"), &variant, &[h])?;
        }
        Ok(())
    }

    /// Builds one adapter per adapted sub-layer of every layer of `shape`.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] for a reduction factor that leaves no bottleneck, or neither
    /// sub-layer selected.
    pub fn init<B: Backend>(
        &self,
        shape: BackboneShape,
        device: &B::Device,
    ) -> Result<Adapters<B>> {
        let m = self.bottleneck(shape.hidden_size)?;
        crate::config_check::finite("scaling", self.scaling)?;
        if self.kinds().is_empty() {
            return Err(PetError::config("mh_adapter", "and output_adapter are both off"));
        }
        let adapters = (0..shape.encoder_layers)
            .flat_map(|layer| {
                self.kinds().into_iter().map(move |kind| SublayerSite::encoder(layer, kind))
            })
            .map(|site| Bottleneck {
                down: LinearConfig::new(shape.hidden_size, m).init(device),
                up: LinearConfig::new(m, shape.hidden_size)
                    .with_initializer(Initializer::Zeros)
                    .init(device),
                site,
            })
            .collect();
        Ok(Adapters {
            adapters,
            activation: self.non_linearity,
            parallel: self.is_parallel,
            scaling: self.scaling,
        })
    }

    /// Trainable parameters for a backbone of `shape`.
    ///
    /// # Errors
    /// As [`AdapterConfig::init`].
    pub fn num_params(&self, shape: BackboneShape) -> Result<usize> {
        let (h, m) = (shape.hidden_size, self.bottleneck(shape.hidden_size)?);
        Ok(shape.encoder_layers * self.kinds().len() * (2 * h * m + m + h))
    }
}

/// One bottleneck: `up(act(down(x)))`.
#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    /// `hidden -> m`
    pub down: Linear<B>,
    /// `m -> hidden`, zero at init.
    pub up: Linear<B>,
    /// The sub-layer it adapts.
    #[module(skip)]
    pub site: SublayerSite,
}

/// Bottleneck adapters of every layer.
#[derive(Module, Debug)]
pub struct Adapters<B: Backend> {
    /// One adapter per adapted sub-layer.
    pub adapters: Vec<Bottleneck<B>>,
    /// Non-linearity.
    #[module(skip)]
    pub activation: AdapterActivation,
    /// Parallel instead of sequential.
    pub parallel: bool,
    /// Output scaling.
    pub scaling: f64,
}

impl<B: Backend> Adapters<B> {
    fn apply(&self, adapter: &Bottleneck<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let hidden = pet_kernels::linear(&adapter.down, x);
        let hidden = match self.activation {
            AdapterActivation::Relu => relu(hidden),
            AdapterActivation::Gelu => gelu(hidden),
            AdapterActivation::Tanh => hidden.tanh(),
        };
        pet_kernels::linear(&adapter.up, hidden)
    }
}

impl<B: Backend> Delta<B> for Adapters<B> {
    fn sublayer(
        &self,
        site: SublayerSite,
        input: Tensor<B, 3>,
        output: Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let Some(adapter) = self.adapters.iter().find(|a| a.site == site) else {
            return output;
        };
        let seen = if self.parallel { input } else { output.clone() };
        output + self.apply(adapter, seen) * self.scaling
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestInner as B;

    fn shape() -> BackboneShape {
        BackboneShape {
            encoder_layers: 1,
            decoder_layers: 0,
            hidden_size: 4,
            num_heads: 1,
            head_dim: 4,
            vocab_size: 0,
        }
    }

    /// An adapter with `down` = identity-like and `up` = 1, so outputs are hand-checkable.
    fn adapters(config: AdapterConfig) -> Adapters<B> {
        let device = Default::default();
        let mut adapters = config.init::<B>(shape(), &device).expect("adapters");
        for a in &mut adapters.adapters {
            a.down.weight = Param::from_tensor(Tensor::ones([4, 2], &device));
            a.down.bias = Some(Param::from_tensor(Tensor::zeros([2], &device)));
            a.up.weight = Param::from_tensor(Tensor::ones([2, 4], &device));
        }
        adapters
    }
    use burn::module::Param;

    #[test]
    fn sequential_adapter_sees_the_output_and_parallel_the_input() {
        let device = Default::default();
        let input = Tensor::<B, 3>::ones([1, 1, 4], &device);
        let output = Tensor::<B, 3>::zeros([1, 1, 4], &device);
        let site = SublayerSite::encoder(0, SublayerKind::FeedForward);
        // Sequential: output + up(relu(down(output))) = 0 + 0.
        let seq =
            adapters(AdapterConfig::pfeiffer(2)).sublayer(site, input.clone(), output.clone());
        assert_eq!(seq.into_data().to_vec::<f32>().expect("floats"), vec![0.0; 4]);
        // Parallel: output + 4 * up(relu(down(input))) = 4 * (2 * 4) per unit.
        let par = adapters(AdapterConfig::parallel(2)).sublayer(site, input, output);
        assert_eq!(par.into_data().to_vec::<f32>().expect("floats"), vec![32.0; 4]);
    }

    #[test]
    fn houlsby_adapts_both_sublayers_and_pfeiffer_only_the_ffn() {
        let count = |c: AdapterConfig| {
            c.init::<B>(shape(), &Default::default()).expect("adapters").adapters.len()
        };
        assert_eq!(count(AdapterConfig::houlsby(2)), 2);
        assert_eq!(count(AdapterConfig::pfeiffer(2)), 1);
        let err = AdapterConfig::houlsby(8)
            .init::<B>(shape(), &Default::default())
            .expect_err("no bottleneck");
        assert!(err.to_string().contains("reduction_factor"), "{err}");
    }
}
