//! The seams: the places inside a backbone where a delta may act.
//!
//! | seam | trait method | placed by | used by |
//! |---|---|---|---|
//! | input prompt | [`Delta::input_prompt`](crate::Delta::input_prompt) | the backbone's [`PromptSlots`] | prompt tuning, VPT-shallow |
//! | per-layer prompt | [`Delta::layer_prompt`](crate::Delta::layer_prompt) | the delta's own slots | VPT-deep |
//! | attention prefix | [`Delta::attention_prefixes`](crate::Delta::attention_prefixes) | [`PrefixSite`]: stack, layer, attention | prefix tuning, P-Tuning v2 |
//! | linear sites | [`Delta::linear`](crate::Delta::linear) | [`LinearSite`]: stack, layer, projection | LoRA |
//! | sub-layer outputs | [`Delta::sublayer`](crate::Delta::sublayer) | [`SublayerSite`]: stack, layer, sub-layer | adapters |
//! | parameters by path | [`Trainability`](crate::Trainability) | dotted paths | BitFit, partial tuning |
//!
//! Beside the seams sit the two position policies a backbone applies to what deltas add:
//! [`PrefixPositions`] (absolute position ids of real tokens under a prefix) and
//! [`PrefixRelativePosition`] (where prefix keys sit in relative-position terms, DeBERTa's and
//! T5's).

use std::collections::BTreeMap;

use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

/// A stack of layers: an encoder's, or a decoder's in an encoder-decoder model.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Stack {
    /// The encoder (every layer of an encoder-only model).
    #[default]
    Encoder,
    /// The decoder.
    Decoder,
}

/// Which attention of a layer: over its own stack's positions, or a decoder's over the
/// encoder's output.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum AttentionKind {
    /// Self-attention.
    #[default]
    SelfAttention,
    /// Cross-attention (decoder queries, encoder keys and values).
    Cross,
}

/// The role of a linear projection inside a transformer layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LinearKind {
    /// Attention query projection.
    Query,
    /// Attention key projection.
    Key,
    /// Attention value projection.
    Value,
    /// Attention output projection.
    AttentionOutput,
    /// First feed-forward projection (hidden -> intermediate).
    Intermediate,
    /// Second feed-forward projection (intermediate -> hidden).
    Output,
    /// Cross-attention query projection (decoder layers).
    CrossQuery,
    /// Cross-attention key projection (decoder layers).
    CrossKey,
    /// Cross-attention value projection (decoder layers).
    CrossValue,
    /// Cross-attention output projection (decoder layers).
    CrossAttentionOutput,
    /// The pooler's dense layer (BERT's `pooler.dense`), outside the layers: its site has
    /// layer 0.
    Pooler,
}

impl LinearKind {
    /// The attention a projection belongs to, or `None` for the feed-forward and pooler sites.
    pub fn attention(self) -> Option<AttentionKind> {
        match self {
            Self::Query | Self::Key | Self::Value | Self::AttentionOutput => {
                Some(AttentionKind::SelfAttention)
            }
            Self::CrossQuery | Self::CrossKey | Self::CrossValue | Self::CrossAttentionOutput => {
                Some(AttentionKind::Cross)
            }
            Self::Intermediate | Self::Output | Self::Pooler => None,
        }
    }
}

/// One linear projection of one layer of one stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinearSite {
    /// The stack the layer belongs to.
    #[serde(default)]
    pub stack: Stack,
    /// Zero-based layer index within the stack.
    pub layer: usize,
    /// Which projection of the layer.
    pub kind: LinearKind,
}

impl LinearSite {
    /// Projection `kind` of encoder layer `layer`.
    pub fn encoder(layer: usize, kind: LinearKind) -> Self {
        Self { stack: Stack::Encoder, layer, kind }
    }
}

/// A linear site as a backbone describes it: where it is, its Hugging Face module path and its
/// dimensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearSiteInfo {
    /// The site.
    pub site: LinearSite,
    /// The module path in the Hugging Face state dict, e.g. `encoder.layer.0.attention.self.query`.
    pub path: String,
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
}

impl LinearSiteInfo {
    /// Whether a PEFT `target_modules` entry selects this site: the entry equals the module path
    /// or is its last dotted component(s), as PEFT matches names.
    pub fn matches_target(&self, target: &str) -> bool {
        self.path == target || self.path.ends_with(&format!(".{target}"))
    }
}

/// The sub-layer whose output an adapter sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SublayerKind {
    /// Multi-head attention, after its output projection and dropout, before the residual sum.
    Attention,
    /// Feed-forward block, after its output projection and dropout, before the residual sum.
    FeedForward,
    /// Cross-attention (decoder layers), after its output projection and dropout, before the
    /// residual sum.
    CrossAttention,
}

/// One sub-layer of one layer of one stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SublayerSite {
    /// The stack the layer belongs to.
    #[serde(default)]
    pub stack: Stack,
    /// Zero-based layer index within the stack.
    pub layer: usize,
    /// Which sub-layer.
    pub kind: SublayerKind,
}

impl SublayerSite {
    /// Sub-layer `kind` of encoder layer `layer`.
    pub fn encoder(layer: usize, kind: SublayerKind) -> Self {
        Self { stack: Stack::Encoder, layer, kind }
    }
}

/// Key and value prefixes for one attention layer.
///
/// # Shapes
/// - `key`, `value`: `[batch, heads, n_prefix, head_dim]`
#[derive(Clone, Debug)]
pub struct AttentionPrefix<B: Backend> {
    /// Prefix keys.
    pub key: Tensor<B, 4>,
    /// Prefix values.
    pub value: Tensor<B, 4>,
}

impl<B: Backend> AttentionPrefix<B> {
    /// Number of prefix positions.
    pub fn len(&self) -> usize {
        self.key.dims()[2]
    }

    /// Whether the prefix has no position.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Both prefixes, `self` first, along the prefix axis.
    pub fn concat(self, other: Self) -> Self {
        Self {
            key: Tensor::cat(vec![self.key, other.key], 2),
            value: Tensor::cat(vec![self.value, other.value], 2),
        }
    }
}

/// The attention of one layer of one stack that a prefix extends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PrefixSite {
    /// The stack.
    pub stack: Stack,
    /// Zero-based layer index within the stack.
    pub layer: usize,
    /// Self- or cross-attention.
    pub attention: AttentionKind,
}

impl PrefixSite {
    /// The self-attention of encoder layer `layer`.
    pub fn encoder(layer: usize) -> Self {
        Self { stack: Stack::Encoder, layer, attention: AttentionKind::SelfAttention }
    }
}

/// The key/value prefixes of one forward pass, kept per [`PrefixSite`]. Every prefix of one
/// (stack, attention kind) has the same length, so a backbone extends each attention mask once.
#[derive(Clone, Debug)]
pub struct AttentionPrefixes<B: Backend> {
    by_site: BTreeMap<PrefixSite, AttentionPrefix<B>>,
}

impl<B: Backend> Default for AttentionPrefixes<B> {
    fn default() -> Self {
        Self { by_site: BTreeMap::new() }
    }
}

impl<B: Backend> AttentionPrefixes<B> {
    /// The prefixes of encoder self-attention layers `0..prefixes.len()`, in layer order.
    ///
    /// # Panics
    /// When they are not all of one length.
    pub fn encoder(prefixes: Vec<AttentionPrefix<B>>) -> Self {
        let mut out = Self::default();
        for (layer, prefix) in prefixes.into_iter().enumerate() {
            out.add(PrefixSite::encoder(layer), prefix);
        }
        out.assert_uniform();
        out
    }

    /// Adds the prefix of `site`, joined after one already there.
    ///
    /// # Panics
    /// When afterwards the prefixes of one stack and attention kind differ in length.
    pub fn insert(&mut self, site: PrefixSite, prefix: AttentionPrefix<B>) {
        self.add(site, prefix);
        self.assert_uniform();
    }

    /// `prefix` at `site`, after the one already there.
    fn add(&mut self, site: PrefixSite, prefix: AttentionPrefix<B>) {
        let joined = match self.by_site.remove(&site) {
            Some(before) => before.concat(prefix),
            None => prefix,
        };
        self.by_site.insert(site, joined);
    }

    /// Every prefix of a stack and attention kind has that kind's length.
    fn assert_uniform(&self) {
        for (site, prefix) in &self.by_site {
            let expected = self.len(site.stack, site.attention);
            assert_eq!(
                prefix.len(),
                expected,
                "expected prefixes of {expected} positions at {site:?}, got {}",
                prefix.len()
            );
        }
    }

    /// The prefix of `site`, if any.
    pub fn get(&self, site: PrefixSite) -> Option<&AttentionPrefix<B>> {
        self.by_site.get(&site)
    }

    /// The prefix length of the attentions of one kind in one stack (0 without prefixes).
    pub fn len(&self, stack: Stack, attention: AttentionKind) -> usize {
        self.by_site
            .iter()
            .find(|(site, _)| site.stack == stack && site.attention == attention)
            .map_or(0, |(_, prefix)| prefix.len())
    }

    /// Whether no site has a prefix.
    pub fn is_empty(&self) -> bool {
        self.by_site.is_empty()
    }

    /// Both sets: at a site both have, `self`'s prefix first, then `other`'s.
    ///
    /// # Panics
    /// When the joined prefixes of one stack and attention kind end up of different lengths.
    pub fn join(mut self, other: Self) -> Self {
        for (site, prefix) in other.by_site {
            self.add(site, prefix);
        }
        self.assert_uniform();
        self
    }
}

/// Where a backbone puts the prompt positions a delta adds, and how many there are: hidden
/// states are `[tokens before start, prompt slots, the other tokens]`. BERT-style encoders put
/// them in front (`start` 0), ViT after `[CLS]` (`start` 1, VPT's `[CLS, prompts, patches]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptSlots {
    /// Index of the first prompt position.
    pub start: usize,
    /// Number of prompt positions.
    pub len: usize,
}

impl PromptSlots {
    /// The sequence position of input position `index` (counting the input without prompts).
    pub fn position(&self, index: usize) -> usize {
        if index < self.start { index } else { index + self.len }
    }

    /// `x` with `prompt` (`[batch, len, hidden]`) inserted at `start`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d]`; output: `[batch, len + seq, d]`
    pub fn insert<B: Backend, const D: usize>(
        &self,
        x: Tensor<B, D>,
        prompt: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let seq = x.dims()[1];
        match self.start {
            0 => Tensor::cat(vec![prompt, x], 1),
            start => Tensor::cat(
                vec![x.clone().narrow(1, 0, start), prompt, x.narrow(1, start, seq - start)],
                1,
            ),
        }
    }

    /// `x` without its prompt positions: the positions of the input.
    ///
    /// # Shapes
    /// - `x`: `[batch, len + seq, d]`; output: `[batch, seq, d]`
    pub fn remove<B: Backend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let total = x.dims()[1];
        let after = total - self.start - self.len;
        match (self.len, self.start) {
            (0, _) => x,
            (_, 0) => x.narrow(1, self.len, after),
            (_, start) => Tensor::cat(
                vec![x.clone().narrow(1, 0, start), x.narrow(1, start + self.len, after)],
                1,
            ),
        }
    }

    /// `x` with the slots replaced by `replace(slots)` when it returns a tensor.
    ///
    /// # Shapes
    /// - `x`: `[batch, len + seq, hidden]`; `replace` takes and returns `[batch, len, hidden]`
    pub fn replace<B: Backend>(
        &self,
        x: Tensor<B, 3>,
        replace: impl FnOnce(Tensor<B, 3>) -> Option<Tensor<B, 3>>,
    ) -> Tensor<B, 3> {
        if self.len == 0 {
            return x;
        }
        match replace(x.clone().narrow(1, self.start, self.len)) {
            Some(slots) => self.insert(self.remove(x), slots),
            None => x,
        }
    }
}

/// How a backbone numbers the positions of real tokens when attention prefixes are present.
///
/// Prefix keys have no position of their own. Hugging Face encoders take the prefix as
/// `past_key_values` and start the absolute position ids of the real tokens at the prefix
/// length, so PEFT's prefix tuning and the P-Tuning v2 reference both run with
/// [`PrefixPositions::Offset`]. It is the default, because it reproduces their logits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrefixPositions {
    /// Real tokens take positions `n_prefix..n_prefix + seq` (PEFT, P-Tuning v2).
    #[default]
    Offset,
    /// Real tokens take positions `0..seq`, as they do without a prefix.
    FromZero,
}

/// How attention-prefix keys (prefix tuning, P-Tuning v2) take part in relative-position terms
/// (DeBERTa's disentangled attention; T5's relative bias). Prefix keys have no token and so no
/// position of their own; the choice is explicit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrefixRelativePosition {
    /// Prefix keys get content scores only: their relative terms are zero (the P-Tuning v2
    /// reference, whose DeBERTa concatenates zeros in front of the relative bias). The default.
    #[default]
    ZeroBias,
    /// Prefix key `j` of `n` sits at position `j - n`, just before the first token (real
    /// tokens keep positions `0..`): prefix keys take relative terms like any key at that
    /// distance.
    BeforeFirstToken,
}

/// The sizes of a backbone that deltas are built against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackboneShape {
    /// Layers of the encoder (of every stack of an encoder-only model).
    pub encoder_layers: usize,
    /// Layers of the decoder (0 for an encoder-only model).
    pub decoder_layers: usize,
    /// Hidden size (`d_model`).
    pub hidden_size: usize,
    /// Attention heads per layer.
    pub num_heads: usize,
    /// Size of one head's queries, keys and values (T5's `d_kv`; `heads * head_dim` need not
    /// equal `hidden_size`).
    pub head_dim: usize,
    /// Vocabulary size (0 for a backbone without one).
    pub vocab_size: usize,
}

impl BackboneShape {
    /// The shape of an encoder-only backbone (no decoder layers).
    pub fn encoder(
        layers: usize,
        hidden_size: usize,
        num_heads: usize,
        head_dim: usize,
        vocab_size: usize,
    ) -> Self {
        Self {
            encoder_layers: layers,
            decoder_layers: 0,
            hidden_size,
            num_heads,
            head_dim,
            vocab_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestInner as B;

    fn floats<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().expect("floats")
    }

    fn prefix(n: usize, value: f32) -> AttentionPrefix<B> {
        let t = Tensor::<B, 4>::full([1, 1, n, 1], value, &Default::default());
        AttentionPrefix { key: t.clone(), value: t }
    }

    #[test]
    fn prompt_slots_insert_remove_and_map_positions() {
        let x = Tensor::<B, 3>::from_data([[[0.0], [1.0], [2.0]]], &Default::default());
        let prompt = Tensor::<B, 3>::from_data([[[8.0], [9.0]]], &Default::default());
        let after_cls = PromptSlots { start: 1, len: 2 };
        let with = after_cls.insert(x.clone(), prompt.clone());
        assert_eq!(floats(with.clone()), [0.0, 8.0, 9.0, 1.0, 2.0]);
        assert_eq!(floats(after_cls.remove(with)), [0.0, 1.0, 2.0]);
        assert_eq!((0..3).map(|i| after_cls.position(i)).collect::<Vec<_>>(), [0, 3, 4]);
        let in_front = PromptSlots { start: 0, len: 2 };
        let with = in_front.insert(x, prompt);
        assert_eq!(floats(with.clone()), [8.0, 9.0, 0.0, 1.0, 2.0]);
        assert_eq!(floats(in_front.remove(with)), [0.0, 1.0, 2.0]);
        assert_eq!(in_front.position(0), 2);
    }

    #[test]
    fn prefixes_are_kept_per_site_and_join_site_by_site() {
        let cross = PrefixSite { stack: Stack::Decoder, layer: 0, attention: AttentionKind::Cross };
        let mut a = AttentionPrefixes::encoder(vec![prefix(2, 1.0), prefix(2, 2.0)]);
        a.insert(cross, prefix(3, 5.0));
        let b = AttentionPrefixes::encoder(vec![prefix(1, 7.0), prefix(1, 8.0)]);
        let joined = a.join(b);
        assert_eq!(joined.len(Stack::Encoder, AttentionKind::SelfAttention), 3);
        assert_eq!(joined.len(Stack::Decoder, AttentionKind::Cross), 3);
        assert_eq!(joined.len(Stack::Decoder, AttentionKind::SelfAttention), 0);
        let layer1 = joined.get(PrefixSite::encoder(1)).expect("layer 1");
        assert_eq!(floats(layer1.key.clone()), [2.0, 2.0, 8.0]);
        assert!(joined.get(PrefixSite::encoder(2)).is_none());
    }

    #[test]
    #[should_panic(expected = "prefixes of 2 positions")]
    fn prefixes_of_one_stack_and_kind_must_share_a_length() {
        let mut a = AttentionPrefixes::encoder(vec![prefix(2, 1.0)]);
        a.insert(PrefixSite::encoder(1), prefix(3, 1.0));
    }

    #[test]
    fn every_projection_names_its_attention() {
        assert_eq!(LinearKind::Value.attention(), Some(AttentionKind::SelfAttention));
        assert_eq!(LinearKind::CrossKey.attention(), Some(AttentionKind::Cross));
        assert_eq!(LinearKind::Pooler.attention(), None);
        // Sites recorded before stacks existed read as encoder sites.
        let old: LinearSite =
            serde_json::from_str(r#"{"layer": 2, "kind": "Query"}"#).expect("json");
        assert_eq!(old, LinearSite::encoder(2, LinearKind::Query));
    }
}
