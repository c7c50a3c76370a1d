//! Deep prefix tuning and P-Tuning v2.
//!
//! Papers: Li and Liang, 2021, "Prefix-Tuning: Optimizing Continuous Prompts for Generation";
//! Liu et al., 2022, "P-Tuning v2: Prompt Tuning Can Be Comparable to Fine-tuning Universally
//! Across Scales and Tasks". References: PEFT's `PrefixEncoder` (`PREFIX_TUNING`) and the
//! P-Tuning v2 repository's `PrefixEncoder`, which share one layout.
//!
//! Every layer's attention gets `num_virtual_tokens` extra keys and values. They come from a
//! table `[num_virtual_tokens, num_layers * 2 * token_dim]`, either trained directly or, with
//! `prefix_projection`, produced by the reparameterization MLP
//! `embedding [n, token_dim] -> linear -> tanh -> linear -> [n, num_layers * 2 * token_dim]`.
//! Column `((layer * 2 + kv) * heads + head) * head_dim + d` of the table is dimension `d` of
//! head `head` of the key (`kv = 0`) or value (`kv = 1`) prefix of layer `layer`. P-Tuning v2
//! applies dropout (`prefix_dropout`) to the key/value table; PEFT has none (set it to 0).
//! [`PrefixTuning::export`] materializes the MLP into the table.
//!
//! Seam: attention prefix. Parameters: `n * L * 2 * d` without projection;
//! `n * d + (d * h + h) + (h * L * 2 * d + L * 2 * d)` with projection (`h` =
//! `encoder_hidden_size`).

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};

use crate::config_check::HeaderCheck;
use crate::delta::Delta;
use crate::error::{PetError, Result};
#[cfg(test)]
use crate::seam::PrefixSite;
use crate::seam::{AttentionPrefix, AttentionPrefixes, BackboneShape};
use pet_kernels::dropout;

/// Prefix tuning configuration, with PEFT's field names.
#[derive(Config, Debug)]
pub struct PrefixTuningConfig {
    /// Prefix length.
    pub num_virtual_tokens: usize,
    /// Hidden size of the backbone.
    pub token_dim: usize,
    /// Number of layers of the backbone.
    pub num_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Whether the table is produced by the reparameterization MLP.
    #[config(default = false)]
    pub prefix_projection: bool,
    /// Hidden size of the reparameterization MLP.
    #[config(default = 512)]
    pub encoder_hidden_size: usize,
    /// Dropout on the key/value table (P-Tuning v2 uses the backbone's hidden dropout; PEFT 0).
    #[config(default = 0.0)]
    pub prefix_dropout: f64,
}

/// The reparameterization MLP: `linear -> tanh -> linear`.
#[derive(Module, Debug)]
pub struct PrefixMlp<B: Backend> {
    /// `token_dim -> encoder_hidden_size`
    pub first: Linear<B>,
    /// `encoder_hidden_size -> num_layers * 2 * token_dim`
    pub second: Linear<B>,
}

impl<B: Backend> PrefixMlp<B> {
    /// # Shapes
    /// - `input`: `[n, token_dim]`, output: `[n, num_layers * 2 * token_dim]`
    pub fn forward(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        self.second.forward(self.first.forward(input).tanh())
    }
}

/// Per-layer key/value prefixes.
#[derive(Module, Debug)]
pub struct PrefixTuning<B: Backend> {
    /// `[n, token_dim]` with projection, `[n, num_layers * 2 * token_dim]` without.
    pub embedding: Param<Tensor<B, 2>>,
    /// The reparameterization MLP, when `prefix_projection` is on.
    pub transform: Option<PrefixMlp<B>>,
    /// Dropout on the key/value table.
    pub dropout: Dropout,
    /// Layers of the backbone.
    pub num_layers: usize,
    /// Heads per layer.
    pub num_heads: usize,
}

impl PrefixTuningConfig {
    /// A config matching `shape` with `num_virtual_tokens` prefix positions.
    pub fn for_backbone(shape: BackboneShape, num_virtual_tokens: usize) -> Self {
        Self::new(num_virtual_tokens, shape.hidden_size, shape.encoder_layers, shape.num_heads)
    }

    fn table_width(&self) -> usize {
        self.num_layers * 2 * self.token_dim
    }

    /// Checks that the tensors under `base` (`delta.prefix.`) hold the prefix this config
    /// builds, in Burn's layout (`embedding`, and with the projection `transform.first` and
    /// `transform.second`), before it is allocated. `field` prefixes the config's field names
    /// in errors (`delta.prefix.`).
    ///
    /// # Errors
    /// As [`HeaderCheck::tensor`], naming `{field}num_virtual_tokens`,
    /// `{field}encoder_hidden_size` or `{field}prefix_projection`.
    pub fn check_tensors(&self, check: &HeaderCheck<'_>, base: &str, field: &str) -> Result<()> {
        let tokens = format!("{field}num_virtual_tokens");
        let projection = format!("{field}prefix_projection");
        let hidden = format!("{field}encoder_hidden_size");
        let Some(table) =
            self.num_layers.checked_mul(2).and_then(|n| n.checked_mul(self.token_dim))
        else {
            return Err(PetError::config(projection, "the key/value table's width overflows"));
        };
        let n = (self.num_virtual_tokens, tokens.as_str());
        if !self.prefix_projection {
            return check.tensor(&format!("{base}embedding"), "", &[n, (table, &projection)]);
        }
        let (dim, inner) =
            ((self.token_dim, projection.as_str()), (self.encoder_hidden_size, hidden.as_str()));
        check.tensor(&format!("{base}embedding"), "", &[n, dim])?;
        let linear = |name: &str, d_in, d_out| {
            check.tensor(&format!("{base}transform.{name}.weight"), &projection, &[d_in, d_out])?;
            check.tensor(&format!("{base}transform.{name}.bias"), &projection, &[d_out])
        };
        linear("first", dim, inner)?;
        linear("second", inner, (table, projection.as_str()))
    }

    /// Builds the prefix. Embeddings start standard normal (`torch.nn.Embedding`), the MLP
    /// with PyTorch's default `Linear` init.
    ///
    /// # Errors
    /// [`PetError::InvalidConfig`] for zero tokens, a `token_dim` not divisible by the heads, a
    /// `prefix_dropout` outside `[0, 1)`, or a projection of hidden size 0.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<PrefixTuning<B>> {
        if self.num_virtual_tokens == 0 {
            return Err(PetError::config("num_virtual_tokens", "must be at least 1"));
        }
        if self.num_attention_heads == 0 || !self.token_dim.is_multiple_of(self.num_attention_heads)
        {
            return Err(PetError::config(
                "num_attention_heads",
                format!(
                    "{} does not divide token_dim {}",
                    self.num_attention_heads, self.token_dim
                ),
            ));
        }
        crate::config_check::dropout("prefix_dropout", self.prefix_dropout)?;
        if self.prefix_projection {
            crate::config_check::positive("encoder_hidden_size", self.encoder_hidden_size)?;
        }
        let width = if self.prefix_projection { self.token_dim } else { self.table_width() };
        let embedding = Initializer::Normal { mean: 0.0, std: 1.0 }
            .init([self.num_virtual_tokens, width], device);
        let transform = self.prefix_projection.then(|| PrefixMlp {
            first: LinearConfig::new(self.token_dim, self.encoder_hidden_size).init(device),
            second: LinearConfig::new(self.encoder_hidden_size, self.table_width()).init(device),
        });
        Ok(PrefixTuning {
            embedding,
            transform,
            dropout: DropoutConfig::new(self.prefix_dropout).init(),
            num_layers: self.num_layers,
            num_heads: self.num_attention_heads,
        })
    }

    /// Trainable parameters, by the formula of the module header.
    pub fn num_params(&self) -> usize {
        let (n, d, h, w) =
            (self.num_virtual_tokens, self.token_dim, self.encoder_hidden_size, self.table_width());
        if self.prefix_projection { n * d + d * h + h + h * w + w } else { n * w }
    }
}

impl<B: Backend> PrefixTuning<B> {
    /// Prefix length.
    pub fn len(&self) -> usize {
        self.embedding.dims()[0]
    }

    /// Whether the prefix has no position.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The config that rebuilds this prefix's shape (dropout is not recorded in the module).
    pub fn config(&self) -> PrefixTuningConfig {
        let [n, width] = self.embedding.dims();
        let config = PrefixTuningConfig::new(n, 0, self.num_layers, self.num_heads);
        match &self.transform {
            Some(mlp) => {
                let [d, h] = mlp.first.weight.dims();
                PrefixTuningConfig {
                    token_dim: d,
                    prefix_projection: true,
                    encoder_hidden_size: h,
                    ..config
                }
            }
            None => PrefixTuningConfig { token_dim: width / (2 * self.num_layers), ..config },
        }
    }

    /// The key/value table, without dropout.
    ///
    /// # Shapes
    /// - output: `[n, num_layers * 2 * token_dim]`
    pub fn table(&self) -> Tensor<B, 2> {
        match &self.transform {
            Some(mlp) => mlp.forward(self.embedding.val()),
            None => self.embedding.val(),
        }
    }

    /// The same prefix with the MLP materialized into a plain table (what checkpoints and PEFT
    /// files hold).
    pub fn export(self) -> PrefixTuning<B> {
        let table = self.table().detach();
        PrefixTuning { embedding: Param::from_tensor(table), transform: None, ..self }
    }
}

impl<B: Backend> Delta<B> for PrefixTuning<B> {
    fn prefix_len(&self) -> usize {
        self.len()
    }

    fn attention_prefixes(&self, batch: usize) -> Option<AttentionPrefixes<B>> {
        let table = self.table();
        let [n, width] = table.dims();
        let slots = 2 * self.num_layers;
        let hidden = width / slots;
        let head_dim = hidden / self.num_heads;
        // [n, L * 2, hidden]
        let table = table.reshape([n, slots, hidden]);
        // Each slot is made contiguous once ([1, n, heads, head_dim], n * hidden values) and
        // broadcast over the batch as a view; dropout, when on, draws per batch element.
        let slot = |i: usize| {
            let rows = table.clone().narrow(1, i, 1).reshape([1, n, self.num_heads, head_dim]);
            let rows =
                dropout(rows.expand([batch, n, self.num_heads, head_dim]), self.dropout.prob);
            // [batch, heads, n, head_dim]
            rows.swap_dims(1, 2)
        };
        Some(AttentionPrefixes::encoder(
            (0..self.num_layers)
                .map(|layer| AttentionPrefix { key: slot(2 * layer), value: slot(2 * layer + 1) })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestInner as B;

    #[test]
    fn table_columns_map_to_layer_kv_head_and_dim() {
        // 1 token, 2 layers, 2 heads, head_dim 1: the table row is [k0h0 k0h1 v0h0 v0h1 k1h0 k1h1 v1h0 v1h1].
        let device = Default::default();
        let mut prefix = PrefixTuningConfig::new(1, 2, 2, 2).init::<B>(&device).expect("prefix");
        let row = Tensor::<B, 2>::from_data([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]], &device);
        prefix.embedding = Param::from_tensor(row);
        let prefixes = prefix.attention_prefixes(1).expect("prefixes");
        let layer = |i| prefixes.get(PrefixSite::encoder(i)).expect("a prefix per layer");
        let values = |t: Tensor<B, 4>| t.into_data().to_vec::<f32>().expect("floats");
        assert_eq!(values(layer(0).key.clone()), vec![0.0, 1.0]);
        assert_eq!(values(layer(0).value.clone()), vec![2.0, 3.0]);
        assert_eq!(values(layer(1).key.clone()), vec![4.0, 5.0]);
        assert_eq!(values(layer(1).value.clone()), vec![6.0, 7.0]);
        assert_eq!(layer(1).key.dims(), [1, 2, 1, 1]);
        assert!(prefixes.get(PrefixSite::encoder(2)).is_none());
    }

    /// The standard deviation of PEFT 0.17.1's initial `PrefixEncoder` table with
    /// `prefix_projection` for MiniLM's shape (16 tokens, `token_dim` 384, hidden 512, 6 layers):
    /// 0.2641-0.2702 over seeds 42-46 (`torch.manual_seed`, then `PrefixEncoder(config)`).
    const PEFT_INITIAL_TABLE_STD: (f64, f64) = (0.2641, 0.2702);

    #[test]
    fn the_reparameterized_table_starts_at_pefts_scale() {
        // The study's `prefix` runs that stay at the majority class are not an initialization
        // defect: the MLP's table starts at the scale PyTorch's defaults give PEFT's.
        let config = PrefixTuningConfig::new(16, 384, 6, 12)
            .with_prefix_projection(true)
            .with_encoder_hidden_size(512);
        let device = Default::default();
        for seed in [42, 43, 44] {
            <B as Backend>::seed(&device, seed);
            let table = config.init::<B>(&device).expect("prefix").table();
            let values = table.into_data().to_vec::<f32>().expect("floats");
            let n = values.len() as f64;
            let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = values.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
            let (low, high) = PEFT_INITIAL_TABLE_STD;
            let std = var.sqrt();
            assert!(std > low - 0.01 && std < high + 0.01, "seed {seed}: std {std}");
        }
    }

    #[test]
    fn heads_that_do_not_divide_the_hidden_size_are_refused() {
        let err =
            PrefixTuningConfig::new(2, 10, 2, 3).init::<B>(&Default::default()).expect_err("heads");
        assert!(err.to_string().contains("num_attention_heads"), "{err}");
    }

    #[test]
    fn config_round_trips_through_the_module() {
        let config = PrefixTuningConfig::new(3, 16, 2, 2)
            .with_prefix_projection(true)
            .with_encoder_hidden_size(8);
        let prefix = config.init::<B>(&Default::default()).expect("prefix");
        let back = prefix.config();
        assert_eq!(
            (back.num_virtual_tokens, back.token_dim, back.num_layers, back.num_attention_heads),
            (3, 16, 2, 2)
        );
        assert!(back.prefix_projection);
        assert_eq!(back.encoder_hidden_size, 8);
        let exported = prefix.export().config();
        assert!(!exported.prefix_projection);
        assert_eq!(exported.token_dim, 16);
    }
}
