//! BERT's pooler (`tanh(dense(hidden[:, 0]))`, which ViT's `ViTPooler` repeats) and what an
//! encoder with one shares: its linear site `pooler.dense` after the layers' sites (PEFT's
//! `target_modules = ["dense"]` adapts it too), reading and replacing any site's weight.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};

use crate::blocks::attention::project;
use crate::blocks::layer::{LinearSiteLayer, stack_linear_sites};
use crate::delta::Delta;
use crate::params::replace_value;
use crate::seam::{LinearKind, LinearSite, LinearSiteInfo};

/// `tanh(dense(hidden[:, 0]))`.
#[derive(Module, Debug)]
pub struct Pooler<B: Backend> {
    /// `hidden -> hidden`
    pub dense: Linear<B>,
}

impl<B: Backend> Pooler<B> {
    /// A pooler with random weights.
    pub fn new(hidden: usize, device: &B::Device) -> Self {
        Self { dense: LinearConfig::new(hidden, hidden).init(device) }
    }

    /// The pooled first position, with the `Pooler` linear site hooked in.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`; output: `[batch, hidden]`
    pub fn forward<D: Delta<B>>(&self, x: Tensor<B, 3>, delta: &D) -> Tensor<B, 2> {
        let [batch, _, hidden] = x.dims();
        // [batch, 1, hidden] from the first position
        let first = x.narrow(1, 0, 1);
        let dense = project(&self.dense, 0, LinearKind::Pooler, first, delta);
        dense.reshape([batch, hidden]).tanh()
    }
}

/// Every linear site of `layers` ([`stack_linear_sites`]), then `pooler.dense` when there is a
/// pooler.
pub fn linear_sites_with_pooler<B: Backend, L: LinearSiteLayer<B>>(
    layers: &[L],
    layer_path: impl Fn(usize) -> String,
    pooler: Option<&Pooler<B>>,
) -> Vec<LinearSiteInfo> {
    let mut sites = stack_linear_sites(layers, layer_path);
    if let Some(pooler) = pooler {
        let [d_input, d_output] = pooler.dense.weight.dims();
        sites.push(LinearSiteInfo {
            site: LinearSite::encoder(0, LinearKind::Pooler),
            path: "pooler.dense".to_string(),
            d_input,
            d_output,
        });
    }
    sites
}

/// The weight of `site`: the pooler's for a `Pooler` site, else a layer's.
///
/// # Shapes
/// - output: `[d_input, d_output]`
pub fn site_weight<B: Backend, L: LinearSiteLayer<B>>(
    layers: &[L],
    pooler: Option<&Pooler<B>>,
    site: LinearSite,
) -> Tensor<B, 2> {
    match (site.kind, pooler) {
        (LinearKind::Pooler, Some(pooler)) => pooler.dense.weight.val(),
        _ => layers[site.layer].linear_weight(site.kind),
    }
}

/// Replaces the weight of `site` (see [`site_weight`]), keeping the parameter's id and
/// trainability.
pub fn set_site_weight<B: Backend, L: LinearSiteLayer<B>>(
    layers: &mut [L],
    pooler: Option<&mut Pooler<B>>,
    site: LinearSite,
    weight: Tensor<B, 2>,
) {
    match (site.kind, pooler) {
        (LinearKind::Pooler, Some(pooler)) => {
            pooler.dense.weight = replace_value(pooler.dense.weight.clone(), weight);
        }
        _ => layers[site.layer].set_linear_weight(site.kind, weight),
    }
}
