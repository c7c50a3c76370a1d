//! LoRA: low-rank adaptation of linear projections.
//!
//! Paper: Hu et al., 2022, "LoRA: Low-Rank Adaptation of Large Language Models". Reference:
//! PEFT's `LoraLayer` (`LORA`).
//!
//! Each targeted linear site `y = x W + b` becomes `y + scaling * dropout(x) A B`, with
//! `A: [d_input, r]` (PEFT's `lora_A.weight` transposed, Kaiming-uniform init) and
//! `B: [r, d_output]` (`lora_B.weight` transposed, zero init, so the delta starts as the
//! identity) and `scaling = lora_alpha / r`. [`Lora::merge`] folds `scaling * A B` into the
//! backbone's weights and [`Lora::unmerge`] takes it out again; [`Lora::scaled`] multiplies the
//! scaling by a factor (PEFT's `scale_layer`).
//!
//! Seam: linear sites, selected by PEFT's `target_modules` names. Parameters:
//! `sum over targeted sites of r * (d_input + d_output)`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};

use crate::backbone::Backbone;
use crate::config_check::HeaderCheck;
use crate::delta::Delta;
use crate::error::{PetError, Result};
use crate::seam::{LinearSite, LinearSiteInfo};
use pet_kernels::dropout;

/// LoRA configuration, with PEFT's field names.
#[derive(Config, Debug)]
pub struct LoraConfig {
    /// Rank of the update.
    pub r: usize,
    /// Scaling numerator: the update is multiplied by `lora_alpha / r`.
    #[config(default = 8.0)]
    pub lora_alpha: f64,
    /// Dropout on the input of the update.
    #[config(default = 0.0)]
    pub lora_dropout: f64,
    /// Module names to adapt, matched against the end of each site's Hugging Face path.
    #[config(default = "vec![\"query\".to_string(), \"value\".to_string()]")]
    pub target_modules: Vec<String>,
}

/// The low-rank update of one linear site.
#[derive(Module, Debug)]
pub struct LoraSite<B: Backend> {
    /// `A`: `d_input -> r`, no bias.
    pub lora_a: Linear<B>,
    /// `B`: `r -> d_output`, no bias.
    pub lora_b: Linear<B>,
    /// Where the update applies.
    #[module(skip)]
    pub site: LinearSite,
}

/// Low-rank updates of the targeted linear sites.
#[derive(Module, Debug)]
pub struct Lora<B: Backend> {
    /// One update per targeted site, in backbone order.
    pub sites: Vec<LoraSite<B>>,
    /// Dropout on the update's input.
    pub dropout: Dropout,
    /// `lora_alpha / r`, times any factor applied with [`Lora::scaled`].
    pub scaling: f64,
}

impl LoraConfig {
    /// The sites of `sites` that `target_modules` selects. As in PEFT, a name that matches no
    /// site is allowed as long as some name matches (configs often list the names of several
    /// architectures).
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] when no target matches any site.
    pub fn targeted(&self, sites: &[LinearSiteInfo]) -> Result<Vec<LinearSiteInfo>> {
        let targeted: Vec<LinearSiteInfo> = sites
            .iter()
            .filter(|s| self.target_modules.iter().any(|t| s.matches_target(t)))
            .cloned()
            .collect();
        if targeted.is_empty() {
            let known: Vec<&str> = sites.iter().map(|s| s.path.as_str()).take(6).collect();
            return Err(PetError::config(
                "target_modules",
                format!(
                    "{:?} match no linear site (sites look like: {})",
                    self.target_modules,
                    known.join(", ")
                ),
            ));
        }
        Ok(targeted)
    }

    /// Checks that the tensors under `base` (`delta.lora.` in a task checkpoint) hold the
    /// updates this config builds for the targeted sites among `sites`, in Burn's layout
    /// (`sites.N.lora_a.weight` `[d_in, r]`, `sites.N.lora_b.weight` `[r, d_out]`), before they
    /// are allocated. `field` prefixes the config's field names in errors (`delta.lora.`).
    ///
    /// # Errors
    /// As [`HeaderCheck::tensor`], naming `{field}r` for another rank and
    /// `{field}target_modules` for a site the file lacks; as [`LoraConfig::targeted`].
    pub fn check_tensors(
        &self,
        sites: &[LinearSiteInfo],
        check: &HeaderCheck<'_>,
        base: &str,
        field: &str,
    ) -> Result<()> {
        let r = format!("{field}r");
        let targets = format!("{field}target_modules");
        for (index, info) in self.targeted(sites)?.iter().enumerate() {
            let key = |part: &str| format!("{base}sites.{index}.{part}.weight");
            let (d_in, d_out) = ((info.d_input, "backbone"), (info.d_output, "backbone"));
            check.tensor(&key("lora_a"), &targets, &[d_in, (self.r, &r)])?;
            check.tensor(&key("lora_b"), &targets, &[(self.r, &r), d_out])?;
        }
        Ok(())
    }

    /// Builds the updates for the targeted sites of `backbone`.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] for `r == 0`, a `lora_alpha` that is not finite, a
    /// `lora_dropout` outside `[0, 1)`, or a target that matches nothing.
    pub fn init<B: Backend, M: Backbone<B>>(
        &self,
        backbone: &M,
        device: &B::Device,
    ) -> Result<Lora<B>> {
        self.init_sites(&backbone.linear_sites(), device)
    }

    /// Builds the updates for the targeted sites among `sites`.
    ///
    /// # Errors
    /// As [`LoraConfig::init`].
    pub fn init_sites<B: Backend>(
        &self,
        sites: &[LinearSiteInfo],
        device: &B::Device,
    ) -> Result<Lora<B>> {
        if self.r == 0 {
            return Err(PetError::config("r", "must be at least 1"));
        }
        crate::config_check::finite("lora_alpha", self.lora_alpha)?;
        crate::config_check::dropout("lora_dropout", self.lora_dropout)?;
        let sites = self
            .targeted(sites)?
            .into_iter()
            .map(|info| LoraSite {
                lora_a: LinearConfig::new(info.d_input, self.r).with_bias(false).init(device),
                lora_b: LinearConfig::new(self.r, info.d_output)
                    .with_bias(false)
                    .with_initializer(Initializer::Zeros)
                    .init(device),
                site: info.site,
            })
            .collect();
        Ok(Lora {
            sites,
            dropout: DropoutConfig::new(self.lora_dropout).init(),
            scaling: self.lora_alpha / self.r as f64,
        })
    }

    /// Trainable parameters for a backbone with linear sites `sites`.
    ///
    /// # Errors
    /// As [`LoraConfig::targeted`].
    pub fn num_params(&self, sites: &[LinearSiteInfo]) -> Result<usize> {
        Ok(self.targeted(sites)?.iter().map(|s| self.r * (s.d_input + s.d_output)).sum())
    }
}

impl<B: Backend> LoraSite<B> {
    /// `A B`, the unscaled weight update.
    ///
    /// # Shapes
    /// - output: `[d_input, d_output]`
    pub fn update(&self) -> Tensor<B, 2> {
        self.lora_a.weight.val().matmul(self.lora_b.weight.val())
    }
}

impl<B: Backend> Lora<B> {
    /// Rank of the updates.
    pub fn rank(&self) -> usize {
        self.sites.first().map_or(0, |s| s.lora_a.weight.dims()[1])
    }

    /// The same updates with their scaling multiplied by `factor`.
    pub fn scaled(self, factor: f64) -> Self {
        Self { scaling: self.scaling * factor, ..self }
    }

    /// `backbone` with every update added to its weights; run it with no delta.
    pub fn merge<M: Backbone<B>>(&self, backbone: M) -> M {
        self.fold(backbone, self.scaling)
    }

    /// `backbone` with every update subtracted from its weights: the inverse of [`Lora::merge`].
    pub fn unmerge<M: Backbone<B>>(&self, backbone: M) -> M {
        self.fold(backbone, -self.scaling)
    }

    fn fold<M: Backbone<B>>(&self, backbone: M, factor: f64) -> M {
        self.sites.iter().fold(backbone, |backbone, lora| {
            let weight = backbone.linear_weight(lora.site) + lora.update().detach() * factor;
            backbone.with_linear_weight(lora.site, weight)
        })
    }
}

impl<B: Backend> Delta<B> for Lora<B> {
    fn linear(&self, site: LinearSite, input: Tensor<B, 3>, output: Tensor<B, 3>) -> Tensor<B, 3> {
        match self.sites.iter().find(|s| s.site == site) {
            Some(lora) => {
                let update = pet_kernels::linear(
                    &lora.lora_b,
                    pet_kernels::linear(&lora.lora_a, dropout(input, self.dropout.prob)),
                );
                output + update * self.scaling
            }
            None => output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::conformance::max_abs_diff;
    use crate::testing::{TestInner as B, TinyEncoderConfig};

    #[test]
    fn unmerge_restores_the_original_weights() {
        let _serial = crate::testing::serial();
        let device = Default::default();
        let backbone = TinyEncoderConfig::tiny().init::<B>(&device);
        let mut lora = LoraConfig::new(2).init(&backbone, &device).expect("lora");
        for site in &mut lora.sites {
            // Non-zero B so that merging changes the weights.
            site.lora_b.weight = crate::params::replace_value(
                site.lora_b.weight.clone(),
                site.lora_b.weight.val().ones_like(),
            );
        }
        let site = lora.sites[0].site;
        let original = backbone.linear_weight(site);
        let merged = lora.merge(backbone);
        assert!(max_abs_diff(merged.linear_weight(site), original.clone()) > 1e-3);
        let restored = lora.unmerge(merged);
        assert!(max_abs_diff(restored.linear_weight(site), original) < 1e-6);
    }

    #[test]
    fn scaling_is_alpha_over_r_times_the_factor() {
        let sites = vec![LinearSiteInfo {
            site: LinearSite::encoder(0, crate::LinearKind::Query),
            path: "encoder.layer.0.attention.self.query".into(),
            d_input: 4,
            d_output: 4,
        }];
        let lora = LoraConfig::new(4)
            .with_lora_alpha(16.0)
            .init_sites::<B>(&sites, &Default::default())
            .expect("lora");
        assert_eq!(lora.scaling, 4.0);
        assert_eq!(lora.scaled(0.5).scaling, 2.0);
    }

    #[test]
    fn a_target_that_matches_nothing_is_a_config_error() {
        let backbone = TinyEncoderConfig::tiny().init::<B>(&Default::default());
        let err = LoraConfig::new(2)
            .with_target_modules(vec!["q_proj".into()])
            .init(&backbone, &Default::default())
            .expect_err("no site");
        assert!(
            err.to_string().contains("q_proj") && err.to_string().contains("target_modules"),
            "{err}"
        );
    }
}
