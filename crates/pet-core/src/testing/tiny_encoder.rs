//! The tiny reference encoder: a [`PostNormEncoder`] of BERT's layout with 2 layers, hidden 16,
//! 2 heads and a vocabulary of 32, small enough for exhaustive tests, exposing every seam. Its
//! parameter paths and linear sites are BERT's, so Hugging Face `BertModel` weights and PEFT
//! adapters of the same sizes load onto it.

use crate::blocks::{EncoderInput, PostNormEncoder, PostNormEncoderConfig};

/// The tiny encoder.
pub type TinyEncoder<B> = PostNormEncoder<B>;

/// Its config type.
pub type TinyEncoderConfig = PostNormEncoderConfig;

/// Its input.
pub type TinyInput<B> = EncoderInput<B>;

impl PostNormEncoderConfig {
    /// The test preset: 2 layers, hidden 16, 2 heads, FFN 32, vocabulary 32, 64 positions, one
    /// token type, a pooler, padding id 0, no dropout (BertModel's layout at those sizes).
    pub fn tiny() -> Self {
        Self::new("tiny-encoder".to_string(), 32, 16, 2, 2, 32)
            .with_hidden_dropout_prob(0.0)
            .with_attention_probs_dropout_prob(0.0)
            .with_max_position_embeddings(64)
            .with_type_vocab_size(1)
            .with_pad_token_id(Some(0))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Tensor;

    use super::*;
    use crate::delta::prefix::PrefixTuningConfig;
    use crate::delta::prompt::PromptTuningConfig;
    use crate::testing::TestInner as B;
    use crate::testing::conformance::max_abs_diff;
    use crate::{Backbone, NoDelta};

    fn input(last: i64, mask_last: f32) -> TinyInput<B> {
        let device = Default::default();
        TinyInput::new(
            Tensor::from_data([[2, 7, 11, last]], &device),
            Tensor::from_data([[1.0, 1.0, 1.0, mask_last]], &device),
        )
    }

    #[test]
    fn prefix_extends_the_attention_mask_and_padding_stays_unseen() {
        let _serial = crate::testing::serial();
        let device = Default::default();
        let encoder = TinyEncoderConfig::tiny().init::<B>(&device);
        let prefix = PrefixTuningConfig::for_backbone(encoder.shape(), 3)
            .init::<B>(&device)
            .expect("prefix");
        // Changing a padded token must not change the real positions' outputs...
        let a = encoder.forward_with(input(5, 0.0), &prefix).hidden.narrow(1, 0, 3);
        let b = encoder.forward_with(input(9, 0.0), &prefix).hidden.narrow(1, 0, 3);
        assert!(max_abs_diff(a.clone(), b) < 1e-6);
        // ...while the prefix is attended to.
        let plain = encoder.forward_with(input(5, 0.0), &NoDelta).hidden.narrow(1, 0, 3);
        assert!(max_abs_diff(a, plain) > 1e-3);
    }

    #[test]
    fn prompt_positions_come_first_and_are_reported() {
        let _serial = crate::testing::serial();
        let device = Default::default();
        let encoder = TinyEncoderConfig::tiny().init::<B>(&device);
        let prompt = PromptTuningConfig::new(2, 16)
            .init(encoder.word_embeddings().as_ref(), &device)
            .expect("prompt");
        let out = encoder.forward_with(input(5, 1.0), &prompt);
        assert_eq!(out.prompt, crate::PromptSlots { start: 0, len: 2 });
        assert_eq!(out.hidden.dims(), [1, 6, 16]);
        assert_eq!(out.mask.into_data().to_vec::<f32>().expect("floats"), vec![1.0; 6]);
        assert_eq!(out.pooled.expect("a pooler").dims(), [1, 16]);
    }

    #[test]
    fn linear_sites_carry_bert_module_paths() {
        let encoder = TinyEncoderConfig::tiny().init::<B>(&Default::default());
        let sites = encoder.linear_sites();
        // Six per layer, then the pooler.
        assert_eq!(sites.len(), 13);
        assert_eq!(sites[12].path, "pooler.dense");
        assert_eq!(sites[12].site, crate::LinearSite::encoder(0, crate::LinearKind::Pooler));
        assert_eq!(sites[0].path, "encoder.layer.0.attention.self.query");
        assert_eq!(sites[4].path, "encoder.layer.0.intermediate.dense");
        assert_eq!((sites[4].d_input, sites[4].d_output), (16, 32));
        assert!(sites[5].matches_target("output.dense") && !sites[5].matches_target("dense.x"));
    }

    #[test]
    fn every_parameter_has_a_bert_key() {
        let encoder = TinyEncoderConfig::tiny().init::<B>(&Default::default());
        let keys: Vec<String> = crate::params::param_entries::<B, _>(&encoder)
            .iter()
            .map(|e| crate::blocks::hf_keys::to_hf(&e.path))
            .collect();
        assert!(keys.contains(&"encoder.layer.1.attention.self.value.bias".to_string()));
        assert!(keys.contains(&"embeddings.LayerNorm.weight".to_string()));
        assert!(keys.contains(&"embeddings.token_type_embeddings.weight".to_string()));
        assert!(keys.contains(&"pooler.dense.weight".to_string()));
        // BertModel(type_vocab_size=1) has 5 embedding + 16 per layer + 2 pooler tensors.
        assert_eq!(keys.len(), 5 + 2 * 16 + 2);
    }
}
