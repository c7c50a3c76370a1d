//! The shared start of every encoder's `forward_with` and its layer loop: the delta's prompt and
//! prefixes are read once, the attention mask is extended over the prompt slots (placed where
//! the backbone says, [`PromptSlots`]), and each layer runs after the per-layer prompt seam has
//! replaced the slots of the deltas that own per-layer prompts. BERT / RoBERTa
//! ([`PostNormEncoder`](super::PostNormEncoder)) and DeBERTa use it; a new encoder (ViT) writes
//! only its embeddings and its layer.

use burn::tensor::{Tensor, backend::Backend};

use crate::backbone::EncoderOutput;
use crate::delta::Delta;
use crate::seam::{
    AttentionKind, AttentionPrefix, AttentionPrefixes, PrefixSite, PromptSlots, Stack,
};

/// What a delta adds to one forward pass of an encoder, read before the embeddings.
#[derive(Clone, Debug)]
pub struct DeltaInputs<B: Backend> {
    /// Where the prompt positions sit in the hidden states.
    pub slots: PromptSlots,
    /// The key/value prefixes of the pass.
    pub prefixes: Option<AttentionPrefixes<B>>,
    /// Prefix positions in front of every encoder self-attention's keys.
    pub prefix_len: usize,
    /// `[batch, n_prompt + seq]`: the input's attention mask with ones at the prompt slots.
    pub mask: Tensor<B, 2>,
}

impl<B: Backend> DeltaInputs<B> {
    /// Reads `delta`'s prompt and prefixes for a batch with `attention_mask`; the prompt slots
    /// start at input position `prompt_start` (0 puts them in front). Returns the inputs and
    /// the prompt, which the backbone's embeddings place at the slots.
    ///
    /// # Shapes
    /// - `attention_mask`: `[batch, seq]`; the prompt: `[batch, n_prompt, hidden]`
    ///
    /// # Panics
    /// When the delta's input prompt is not `prompt_len` positions long, or its encoder
    /// self-attention prefixes not `prefix_len` keys.
    pub fn read<D: Delta<B>>(
        delta: &D,
        attention_mask: Tensor<B, 2>,
        prompt_start: usize,
    ) -> (Self, Option<Tensor<B, 3>>) {
        let [batch, _] = attention_mask.dims();
        let prompt = delta.input_prompt(batch);
        let len = prompt.as_ref().map_or(0, |p| p.dims()[1]);
        assert_eq!(len, delta.prompt_len(), "expected an input prompt of prompt_len positions");
        let slots = PromptSlots { start: if len > 0 { prompt_start } else { 0 }, len };
        let prefixes = delta.attention_prefixes(batch);
        let prefix_len =
            prefixes.as_ref().map_or(0, |p| p.len(Stack::Encoder, AttentionKind::SelfAttention));
        assert_eq!(
            prefix_len,
            delta.prefix_len(),
            "expected attention prefixes of prefix_len keys"
        );
        let mask = match len {
            0 => attention_mask,
            _ => {
                let ones = Tensor::ones([batch, len], &attention_mask.device());
                slots.insert(attention_mask, ones)
            }
        };
        (Self { slots, prefixes, prefix_len, mask }, prompt)
    }

    /// The mask over every key of an encoder self-attention: prefix positions (always
    /// attended) first, then [`DeltaInputs::mask`].
    ///
    /// # Shapes
    /// - output: `[batch, n_prefix + n_prompt + seq]`
    pub fn key_mask(&self) -> Tensor<B, 2> {
        with_leading_ones(self.mask.clone(), self.prefix_len)
    }

    /// The prefix of encoder layer `layer`'s self-attention.
    pub fn prefix(&self, layer: usize) -> Option<&AttentionPrefix<B>> {
        self.prefixes.as_ref().and_then(|p| p.get(PrefixSite::encoder(layer)))
    }

    /// Runs `count` layers over `x`: before layer `i`, the per-layer prompt seam replaces the
    /// slots of the deltas that have a prompt for it; `layer(i, x, prefix)` runs the layer.
    ///
    /// # Shapes
    /// - `x` and output: `[batch, n_prompt + seq, hidden]`
    pub fn run_layers<D: Delta<B>>(
        &self,
        x: Tensor<B, 3>,
        count: usize,
        delta: &D,
        mut layer: impl FnMut(usize, Tensor<B, 3>, Option<&AttentionPrefix<B>>) -> Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        (0..count).fold(x, |x, index| {
            let x = self.slots.replace(x, |own| delta.layer_prompt(index, own));
            layer(index, x, self.prefix(index))
        })
    }

    /// The encoder's output: `hidden` from the last layer, the mask and the prompt slots.
    pub fn output(self, hidden: Tensor<B, 3>, pooled: Option<Tensor<B, 2>>) -> EncoderOutput<B> {
        EncoderOutput { hidden, mask: self.mask, prompt: self.slots, pooled }
    }
}

/// `mask` with `n` ones in front: the mask over `n` prefix positions, which every query sees,
/// followed by the positions of `mask`.
///
/// # Shapes
/// - `mask`: `[batch, seq]`; output: `[batch, n + seq]`
pub fn with_leading_ones<B: Backend>(mask: Tensor<B, 2>, n: usize) -> Tensor<B, 2> {
    match n {
        0 => mask,
        n => {
            let [batch, _] = mask.dims();
            Tensor::cat(vec![Tensor::ones([batch, n], &mask.device()), mask], 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::{Module, Param};

    use super::*;
    use crate::testing::TestInner as B;

    /// Two prompt slots; new values for layer 1 only.
    #[derive(Module, Clone, Debug)]
    struct LayerOneSlots<Bk: Backend> {
        slots: Param<Tensor<Bk, 3>>,
    }

    impl<Bk: Backend> Delta<Bk> for LayerOneSlots<Bk> {
        fn prompt_len(&self) -> usize {
            2
        }

        fn input_prompt(&self, _batch: usize) -> Option<Tensor<Bk, 3>> {
            Some(self.slots.val().zeros_like())
        }

        fn layer_prompt(&self, layer: usize, _slots: Tensor<Bk, 3>) -> Option<Tensor<Bk, 3>> {
            (layer == 1).then(|| self.slots.val())
        }
    }

    fn floats<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().expect("floats")
    }

    fn delta() -> LayerOneSlots<B> {
        let slots = Tensor::<B, 3>::from_data([[[8.0], [9.0]]], &Default::default());
        LayerOneSlots { slots: Param::from_tensor(slots) }
    }

    #[test]
    fn the_mask_has_ones_at_the_slots_the_backbone_places() {
        let mask = Tensor::<B, 2>::from_data([[1.0, 1.0, 0.0]], &Default::default());
        let (front, prompt) = DeltaInputs::read(&delta(), mask.clone(), 0);
        assert_eq!(prompt.map(|p| p.dims()), Some([1, 2, 1]));
        assert_eq!(front.slots, PromptSlots { start: 0, len: 2 });
        assert_eq!(floats(front.mask), [1.0, 1.0, 1.0, 1.0, 0.0]);
        let (after_cls, _) = DeltaInputs::read(&delta(), mask, 1);
        assert_eq!(after_cls.slots, PromptSlots { start: 1, len: 2 });
        assert_eq!(floats(after_cls.mask), [1.0, 1.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn a_layer_prompt_replaces_the_slots_of_its_layer_only() {
        let device = Default::default();
        let mask = Tensor::<B, 2>::ones([1, 2], &device);
        // [CLS, slot, slot, token]: slots after the first position, as ViT places them.
        let (inputs, _) = DeltaInputs::read(&delta(), mask, 1);
        let x = Tensor::<B, 3>::from_data([[[1.0], [2.0], [3.0], [4.0]]], &device);
        let mut seen = Vec::new();
        let out = inputs.run_layers(x, 2, &delta(), |index, x, prefix| {
            assert!(prefix.is_none());
            seen.push((index, floats(x.clone())));
            x
        });
        assert_eq!(seen[0], (0, vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(seen[1], (1, vec![1.0, 8.0, 9.0, 4.0]));
        assert_eq!(floats(out), [1.0, 8.0, 9.0, 4.0]);
    }

    #[test]
    fn leading_ones_go_in_front_of_the_mask() {
        let mask = Tensor::<B, 2>::from_data([[1.0, 0.0]], &Default::default());
        assert_eq!(floats(with_leading_ones(mask.clone(), 0)), [1.0, 0.0]);
        assert_eq!(floats(with_leading_ones(mask, 2)), [1.0, 1.0, 1.0, 0.0]);
    }
}
