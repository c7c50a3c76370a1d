//! `config.json` of DeBERTa-v2 / v3 checkpoints (transformers' `DebertaV2Config`), with Hugging
//! Face's field names and defaults, and the checks that refuse what pet does not implement.

use std::collections::BTreeMap;
use std::path::Path;

use pet_core::blocks::Activation;
use pet_core::blocks::layer::PostNormLayerConfig;
use pet_core::config_check::HeaderCheck;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{NlpError, Result};

fn model_type() -> String {
    "deberta-v2".to_string()
}
fn gelu() -> Activation {
    Activation::Gelu
}
fn dropout() -> f64 {
    0.1
}
fn max_positions() -> usize {
    512
}
fn eps() -> f64 {
    1e-7
}
fn minus_one() -> i64 {
    -1
}
fn none() -> String {
    "none".to_string()
}
fn tanh() -> String {
    "tanh".to_string()
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn pad() -> Option<usize> {
    Some(0)
}

/// `pos_att_type` as a list (`["p2c", "c2p"]`), a `|`-joined string (`"p2c|c2p"`, the older
/// form transformers still accepts) or null; lower-cased and trimmed as transformers does.
fn pos_att_type<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<String>),
        Joined(String),
    }
    let split = |s: &str| -> Vec<String> {
        s.split('|').map(|x| x.trim().to_lowercase()).filter(|x| !x.is_empty()).collect()
    };
    Ok(match Option::<Form>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(Form::List(list)) => list.iter().flat_map(|s| split(s)).collect(),
        Some(Form::Joined(joined)) => split(&joined),
    })
}

/// The fields of a Hugging Face DeBERTa-v2 `config.json` that shape the network, with
/// transformers' defaults for absent fields (absent `share_att_key`, `position_buckets`,
/// `norm_rel_ebd`, `conv_*` take the values `DisentangledSelfAttention` and `DebertaV2Encoder`
/// fall back to).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DebertaV2Config {
    /// `deberta-v2` (v2 and v3 checkpoints share it).
    #[serde(default = "model_type")]
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Heads per layer.
    pub num_attention_heads: usize,
    /// Feed-forward size.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    #[serde(default = "gelu")]
    pub hidden_act: Activation,
    /// Dropout on hidden states (and on the relative embeddings, `pos_dropout`).
    #[serde(default = "dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[serde(default = "dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Absolute positions (and the log-bucket range when `max_relative_positions` < 1).
    #[serde(default = "max_positions")]
    pub max_position_embeddings: usize,
    /// Token types (0: none, the DeBERTa default).
    #[serde(default)]
    pub type_vocab_size: usize,
    /// Layer-norm epsilon.
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    /// Disentangled attention with relative position embeddings.
    #[serde(default)]
    pub relative_attention: bool,
    /// Relative distance range; < 1 means `max_position_embeddings`.
    #[serde(default = "minus_one")]
    pub max_relative_positions: i64,
    /// Log-bucketed relative positions when > 0 (DeBERTa-v3: 256).
    #[serde(default = "minus_one")]
    pub position_buckets: i64,
    /// Which relative terms enter the scores: `c2p`, `p2c`.
    #[serde(default, deserialize_with = "pos_att_type")]
    pub pos_att_type: Vec<String>,
    /// Relative embeddings projected by the content `query_proj` / `key_proj` instead of
    /// separate `pos_query_proj` / `pos_key_proj`.
    #[serde(default)]
    pub share_att_key: bool,
    /// `none` or `layer_norm` (a layer norm on the relative embeddings, `encoder.LayerNorm`).
    #[serde(default = "none")]
    pub norm_rel_ebd: String,
    /// Kernel of the convolution beside layer 0 (0: none).
    #[serde(default)]
    pub conv_kernel_size: usize,
    /// Activation of the convolution.
    #[serde(default = "tanh")]
    pub conv_act: String,
    /// Groups of the convolution.
    #[serde(default = "one")]
    pub conv_groups: usize,
    /// Absolute position embeddings added to the input.
    #[serde(default = "yes")]
    pub position_biased_input: bool,
    /// Padding token; its word-embedding row gets no gradient.
    #[serde(default = "pad")]
    pub pad_token_id: Option<usize>,
    /// Word-embedding size; only `hidden_size` is supported (no `embed_proj`).
    #[serde(default)]
    pub embedding_size: Option<usize>,
    /// Size of one attention head; only `hidden_size / num_attention_heads` is supported.
    #[serde(default)]
    pub attention_head_size: Option<usize>,
    /// Size of the ContextPooler (task models); must be `hidden_size`.
    #[serde(default)]
    pub pooler_hidden_size: Option<usize>,
    /// Activation of the ContextPooler.
    #[serde(default = "gelu")]
    pub pooler_hidden_act: Activation,
    /// Dropout before the ContextPooler's dense layer.
    #[serde(default)]
    pub pooler_dropout: f64,
    /// Dropout before a sequence classifier (`hidden_dropout_prob` when absent).
    #[serde(default)]
    pub cls_dropout: Option<f64>,
    /// Class names of a task checkpoint, by index.
    #[serde(default)]
    pub id2label: BTreeMap<String, String>,
}

impl DebertaV2Config {
    /// A small DeBERTa-v3-style network for tests: vocabulary 40, hidden 16, 2 layers of 4
    /// heads, feed-forward 24, no dropout, c2p and p2c with shared keys over 4 log buckets,
    /// layer-normed relative embeddings, no absolute positions, no token types, no convolution.
    pub fn tiny() -> Self {
        Self {
            model_type: model_type(),
            vocab_size: 40,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 24,
            hidden_act: Activation::Gelu,
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            max_position_embeddings: 32,
            type_vocab_size: 0,
            layer_norm_eps: 1e-7,
            relative_attention: true,
            max_relative_positions: -1,
            position_buckets: 4,
            pos_att_type: vec!["p2c".into(), "c2p".into()],
            share_att_key: true,
            norm_rel_ebd: "layer_norm".into(),
            conv_kernel_size: 0,
            conv_act: tanh(),
            conv_groups: 1,
            position_biased_input: false,
            pad_token_id: Some(0),
            embedding_size: None,
            attention_head_size: None,
            pooler_hidden_size: None,
            pooler_hidden_act: Activation::Gelu,
            pooler_dropout: 0.0,
            cls_dropout: None,
            id2label: BTreeMap::new(),
        }
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Whether the content-to-position term is on.
    pub fn c2p(&self) -> bool {
        self.pos_att_type.iter().any(|t| t == "c2p")
    }

    /// Whether the position-to-content term is on.
    pub fn p2c(&self) -> bool {
        self.pos_att_type.iter().any(|t| t == "p2c")
    }

    /// `1 + number of relative terms`: scores are divided by `sqrt(head_dim * scale_factor)`
    /// (counted from `pos_att_type` even without `relative_attention`, as transformers does).
    pub fn scale_factor(&self) -> usize {
        1 + usize::from(self.c2p()) + usize::from(self.p2c())
    }

    /// The relative distance range: `max_relative_positions`, or `max_position_embeddings`
    /// when it is below 1.
    pub fn max_relative(&self) -> i64 {
        if self.max_relative_positions < 1 {
            self.max_position_embeddings as i64
        } else {
            self.max_relative_positions
        }
    }

    /// `att_span` (transformers' `pos_ebd_size`): `position_buckets` when positive, else
    /// [`Self::max_relative`]. The relative embedding table has `2 * att_span` rows.
    pub fn att_span(&self) -> usize {
        if self.position_buckets > 0 {
            self.position_buckets as usize
        } else {
            self.max_relative() as usize
        }
    }

    /// Whether the relative embeddings pass through `encoder.LayerNorm`.
    pub fn norm_rel_embeddings(&self) -> bool {
        self.norm_rel_ebd.split('|').any(|x| x.trim().eq_ignore_ascii_case("layer_norm"))
    }

    /// The convolution's activation.
    ///
    /// # Errors
    /// [`NlpError::Config`] naming `conv_act` for a name pet does not implement.
    pub fn conv_activation(&self, path: &Path) -> Result<Activation> {
        serde_json::from_value::<Activation>(serde_json::Value::String(self.conv_act.clone()))
            .map_err(|_| {
                refuse(
                    path,
                    "conv_act",
                    format!(
                        "`{}` is not supported; use tanh, gelu, gelu_new, relu or silu",
                        self.conv_act
                    ),
                )
            })
    }

    /// Refuses what pet does not implement, naming `path` and the field.
    ///
    /// # Errors
    /// [`NlpError::Config`] for: another `model_type`; heads that do not divide the hidden
    /// size or an `attention_head_size` other than their quotient; an `embedding_size` other
    /// than `hidden_size` (the `embed_proj` variant); `pos_att_type` entries other than `c2p`
    /// and `p2c`; a `norm_rel_ebd` other than `none` / `layer_norm`; an unsupported or even
    /// `conv_kernel_size`, `conv_groups` that do not divide the hidden size, an unknown
    /// `conv_act`; a `pooler_hidden_size` other than `hidden_size`; sizes of 0, dropout outside
    /// `[0, 1)`, a `layer_norm_eps` that is not finite and above 0, a `pad_token_id` outside the
    /// vocabulary.
    pub fn check(&self, path: &Path) -> Result<()> {
        let fail = |field: &str, reason: String| Err(refuse(path, field, reason));
        if self.model_type != "deberta-v2" {
            return fail(
                "model_type",
                format!("`{}` is not a DeBERTa-v2 / v3 checkpoint (`deberta-v2`)", self.model_type),
            );
        }
        self.check_values().map_err(|e| NlpError::at_config(path, e))?;
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return fail(
                "num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    self.num_attention_heads, self.hidden_size
                ),
            );
        }
        if let Some(size) = self.attention_head_size.filter(|&s| s != self.head_dim()) {
            return fail(
                "attention_head_size",
                format!("{size} is not supported; only hidden_size / num_attention_heads"),
            );
        }
        if let Some(size) = self.embedding_size.filter(|&s| s != self.hidden_size) {
            return fail(
                "embedding_size",
                format!(
                    "{size} differs from hidden_size {} (the `embed_proj` variant is not supported)",
                    self.hidden_size
                ),
            );
        }
        if let Some(other) = self.pos_att_type.iter().find(|t| *t != "c2p" && *t != "p2c") {
            return fail(
                "pos_att_type",
                format!("`{other}` is not supported; DeBERTa-v2 uses `c2p` and `p2c`"),
            );
        }
        if let Some(other) = self
            .norm_rel_ebd
            .split('|')
            .map(|x| x.trim().to_lowercase())
            .find(|x| x != "none" && x != "layer_norm")
        {
            return fail(
                "norm_rel_ebd",
                format!("`{other}` is not supported; use `none` or `layer_norm`"),
            );
        }
        if self.conv_kernel_size > 0 {
            if self.conv_kernel_size.is_multiple_of(2) {
                return fail(
                    "conv_kernel_size",
                    format!(
                        "{} is even; transformers' padding keeps the length only for odd kernels",
                        self.conv_kernel_size
                    ),
                );
            }
            if self.conv_groups == 0 || !self.hidden_size.is_multiple_of(self.conv_groups) {
                return fail(
                    "conv_groups",
                    format!(
                        "{} does not divide hidden_size {}",
                        self.conv_groups, self.hidden_size
                    ),
                );
            }
            self.conv_activation(path)?;
        }
        if let Some(size) = self.pooler_hidden_size.filter(|&s| s != self.hidden_size) {
            return fail(
                "pooler_hidden_size",
                format!("{size} differs from hidden_size {}", self.hidden_size),
            );
        }
        if self.relative_attention && self.att_span() == 0 {
            return fail("max_position_embeddings", "relative attention needs a span".into());
        }
        Ok(())
    }

    /// The value checks every encoder shares: sizes of 0, dropout outside `[0, 1)`, a
    /// non-positive or non-finite `layer_norm_eps`, a `pad_token_id` outside the vocabulary.
    fn check_values(&self) -> pet_core::Result<()> {
        use pet_core::config_check::{below, dropout, positive, positive_finite};
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            positive(field, value)?;
        }
        dropout("hidden_dropout_prob", self.hidden_dropout_prob)?;
        dropout("attention_probs_dropout_prob", self.attention_probs_dropout_prob)?;
        dropout("pooler_dropout", self.pooler_dropout)?;
        if let Some(p) = self.cls_dropout {
            dropout("cls_dropout", p)?;
        }
        positive_finite("layer_norm_eps", self.layer_norm_eps)?;
        if let Some(pad) = self.pad_token_id {
            below("pad_token_id", pad, "vocab_size", self.vocab_size)?;
        }
        Ok(())
    }

    /// Checks the sizes against a weights file's header before anything is allocated: every
    /// tensor [`DebertaV2Config::init`] would build must be in the file with the shape the config
    /// gives it, the first layer the file lacks ending the check. Call after
    /// [`DebertaV2Config::check`].
    ///
    /// # Errors
    /// As [`HeaderCheck::tensor`]: [`pet_core::PetError::InvalidConfig`] naming the field
    /// (`hidden_size`, `num_hidden_layers`, `position_buckets`, ...) and the file's key and shape.
    pub fn check_header(&self, check: &HeaderCheck<'_>) -> pet_core::Result<()> {
        let h = (self.hidden_size, "hidden_size");
        let table = |key: &str, origin: &str, rows: (usize, &str)| {
            check.tensor(&format!("embeddings.{key}.weight"), origin, &[rows, h])
        };
        table("word_embeddings", "", (self.vocab_size, "vocab_size"))?;
        if self.position_biased_input {
            let rows = (self.max_position_embeddings, "max_position_embeddings");
            table("position_embeddings", "position_biased_input", rows)?;
        }
        if self.type_vocab_size > 0 {
            let rows = (self.type_vocab_size, "type_vocab_size");
            table("token_type_embeddings", "type_vocab_size", rows)?;
        }
        check.norm("embeddings.LayerNorm", "", h)?;
        let layer = PostNormLayerConfig::new(
            self.hidden_size,
            self.intermediate_size,
            self.hidden_act,
            self.layer_norm_eps,
            self.hidden_dropout_prob,
        );
        let separate = self.relative_attention && !self.share_att_key;
        let origin = "num_hidden_layers";
        for index in 0..self.num_hidden_layers {
            let base = format!("encoder.layer.{index}");
            let attention = |name: &str| format!("{base}.attention.self.{name}");
            for name in ["query_proj", "key_proj", "value_proj"] {
                check.linear(&attention(name), origin, h, h)?;
            }
            if separate && self.c2p() {
                check.linear(&attention("pos_key_proj"), "share_att_key", h, h)?;
            }
            if separate && self.p2c() {
                check.linear(&attention("pos_query_proj"), "share_att_key", h, h)?;
            }
            layer.check_header(check, &base, origin)?;
        }
        if self.relative_attention {
            let field = match self.position_buckets > 0 {
                true => "position_buckets",
                false => "max_relative_positions",
            };
            let Some(rows) = self.att_span().checked_mul(2) else {
                return Err(pet_core::PetError::config(field, "the relative span overflows"));
            };
            let dims = [(rows, field), h];
            check.tensor("encoder.rel_embeddings.weight", "relative_attention", &dims)?;
            if self.norm_rel_embeddings() {
                check.norm("encoder.LayerNorm", "norm_rel_ebd", h)?;
            }
        }
        if self.conv_kernel_size > 0 {
            let groups = self.hidden_size / self.conv_groups.max(1);
            let dims = [h, (groups, "conv_groups"), (self.conv_kernel_size, "conv_kernel_size")];
            check.tensor("encoder.conv.conv.weight", "conv_kernel_size", &dims)?;
            check.tensor("encoder.conv.conv.bias", "conv_kernel_size", &[h])?;
            check.norm("encoder.conv.LayerNorm", "conv_kernel_size", h)?;
        }
        Ok(())
    }
}

fn refuse(path: &Path, field: &str, reason: String) -> NlpError {
    NlpError::Config { path: path.to_path_buf(), field: field.to_string(), reason }
}

/// Reads and checks `config.json`.
///
/// # Errors
/// [`NlpError::Core`] with an I/O or format error naming the file and the JSON position;
/// [`NlpError::Config`] as [`DebertaV2Config::check`].
pub fn read_config(path: &Path) -> Result<DebertaV2Config> {
    let config: DebertaV2Config = crate::folder::read_json_config(path)?;
    config.check(path)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> DebertaV2Config {
        let json = format!(
            r#"{{"model_type": "deberta-v2", "vocab_size": 30, "hidden_size": 8,
            "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16 {extra}}}"#
        );
        serde_json::from_str(&json).expect("valid config")
    }

    #[test]
    fn pos_att_type_reads_a_list_or_a_joined_string() {
        assert_eq!(parse(r#", "pos_att_type": ["p2c", "c2p"]"#).pos_att_type, ["p2c", "c2p"]);
        let joined = parse(r#", "pos_att_type": "P2C| c2p""#);
        assert_eq!(joined.pos_att_type, ["p2c", "c2p"]);
        assert!(joined.c2p() && joined.p2c());
        assert_eq!(joined.scale_factor(), 3);
        assert!(parse(r#", "pos_att_type": null"#).pos_att_type.is_empty());
        assert!(parse("").pos_att_type.is_empty());
    }

    #[test]
    fn absent_fields_take_transformers_defaults() {
        let c = parse("");
        assert_eq!(c.type_vocab_size, 0);
        assert_eq!(c.layer_norm_eps, 1e-7);
        assert!(c.position_biased_input && !c.relative_attention && !c.share_att_key);
        assert_eq!(c.pad_token_id, Some(0));
        assert_eq!(c.conv_activation(Path::new("c")).expect("tanh"), Activation::Tanh);
        // max_relative_positions < 1 falls back to max_position_embeddings.
        assert_eq!(c.att_span(), 512);
        let buckets = parse(r#", "position_buckets": 256, "max_relative_positions": 128"#);
        assert_eq!((buckets.att_span(), buckets.max_relative()), (256, 128));
    }

    #[test]
    fn unsupported_values_name_the_file_and_field() {
        let path = Path::new("m/config.json");
        for (extra, field) in [
            (r#", "embedding_size": 4"#, "embedding_size"),
            (r#", "pos_att_type": "c2p|p2p""#, "pos_att_type"),
            (r#", "norm_rel_ebd": "batch_norm""#, "norm_rel_ebd"),
            (r#", "conv_kernel_size": 2"#, "conv_kernel_size"),
            (r#", "conv_kernel_size": 3, "conv_act": "mish""#, "conv_act"),
            (r#", "conv_kernel_size": 3, "conv_groups": 3"#, "conv_groups"),
            (r#", "attention_head_size": 2"#, "attention_head_size"),
            (r#", "pooler_hidden_size": 4"#, "pooler_hidden_size"),
        ] {
            expect_refused(parse(extra), field, extra);
        }
        let v1 = DebertaV2Config { model_type: "deberta".into(), ..parse("") };
        expect_refused(v1, "model_type", "deberta");
        let heads = DebertaV2Config { num_attention_heads: 3, ..parse("") };
        expect_refused(heads, "num_attention_heads", "3 heads");
        assert!(parse(r#", "embedding_size": 8, "conv_kernel_size": 3"#).check(path).is_ok());
        assert!(DebertaV2Config::tiny().check(path).is_ok());
    }

    fn expect_refused(config: DebertaV2Config, field: &str, what: &str) {
        let path = Path::new("m/config.json");
        match config.check(path) {
            Err(NlpError::Config { path: p, field: f, reason }) => {
                assert_eq!((p.as_path(), f.as_str()), (path, field), "{what}: {reason}")
            }
            other => panic!("{what}: expected a config error, got {other:?}"),
        }
    }

    fn field_of(result: pet_core::Result<()>) -> String {
        pet_core::testing::invalid_config(result).0
    }

    fn hf_shapes(config: &DebertaV2Config) -> BTreeMap<String, Vec<usize>> {
        use pet_core::blocks::hf_keys::{BertKeys, to_state};
        type B = pet_core::testing::TestInner;
        let encoder = config.init::<B>(&Default::default());
        let state = to_state::<B, _>(&encoder, &BertKeys).expect("state");
        state.iter().map(|(k, v)| (k.clone(), v.shape.to_vec())).collect()
    }

    #[test]
    fn the_header_check_lists_exactly_the_tensors_init_builds() {
        let tiny = DebertaV2Config::tiny();
        for config in [
            tiny.clone(),
            DebertaV2Config {
                share_att_key: false,
                conv_kernel_size: 3,
                conv_groups: 2,
                ..tiny.clone()
            },
            DebertaV2Config {
                relative_attention: false,
                position_biased_input: true,
                type_vocab_size: 2,
                ..tiny.clone()
            },
            DebertaV2Config {
                position_buckets: -1,
                max_relative_positions: 6,
                norm_rel_ebd: "none".into(),
                ..tiny.clone()
            },
        ] {
            config.check(Path::new("config.json")).expect("supported");
            let shapes = hf_shapes(&config);
            let check = HeaderCheck::new(&shapes, "m.safetensors", "");
            config.check_header(&check).expect("its own file fits");
            let mut checked = check.checked();
            checked.sort();
            assert_eq!(checked, shapes.keys().cloned().collect::<Vec<_>>());
        }
    }

    #[test]
    fn sizes_the_file_does_not_hold_name_the_field() {
        let tiny = DebertaV2Config::tiny();
        let shapes = hf_shapes(&tiny);
        let check = HeaderCheck::new(&shapes, "m.safetensors", "");
        let huge = |c: DebertaV2Config| field_of(c.check_header(&check));
        assert_eq!(huge(DebertaV2Config { hidden_size: 100_000, ..tiny.clone() }), "hidden_size");
        assert_eq!(
            huge(DebertaV2Config { vocab_size: 2_000_000_000, ..tiny.clone() }),
            "vocab_size"
        );
        assert_eq!(
            huge(DebertaV2Config { num_hidden_layers: 1000, ..tiny.clone() }),
            "num_hidden_layers"
        );
        assert_eq!(
            huge(DebertaV2Config { intermediate_size: 1 << 40, ..tiny.clone() }),
            "intermediate_size"
        );
        assert_eq!(
            huge(DebertaV2Config { position_buckets: 1 << 40, ..tiny.clone() }),
            "position_buckets"
        );
        assert_eq!(
            huge(DebertaV2Config { position_buckets: i64::MAX, ..tiny.clone() }),
            "position_buckets"
        );
        assert_eq!(
            huge(DebertaV2Config { conv_kernel_size: 3, ..tiny.clone() }),
            "conv_kernel_size"
        );
        assert_eq!(huge(DebertaV2Config { share_att_key: false, ..tiny.clone() }), "share_att_key");
    }

    #[test]
    fn values_no_encoder_can_use_name_the_field() {
        for (extra, field) in [
            (r#", "hidden_dropout_prob": 1.0"#, "hidden_dropout_prob"),
            (r#", "attention_probs_dropout_prob": -0.1"#, "attention_probs_dropout_prob"),
            (r#", "pooler_dropout": 2"#, "pooler_dropout"),
            (r#", "cls_dropout": 1.5"#, "cls_dropout"),
            (r#", "layer_norm_eps": 0"#, "layer_norm_eps"),
            (r#", "layer_norm_eps": -1e-7"#, "layer_norm_eps"),
            (r#", "pad_token_id": 30"#, "pad_token_id"),
            (r#", "max_position_embeddings": 0"#, "max_position_embeddings"),
        ] {
            expect_refused(parse(extra), field, extra);
        }
        expect_refused(DebertaV2Config { vocab_size: 0, ..parse("") }, "vocab_size", "vocab 0");
        expect_refused(
            DebertaV2Config { num_hidden_layers: 0, ..parse("") },
            "num_hidden_layers",
            "0 layers",
        );
    }
}
