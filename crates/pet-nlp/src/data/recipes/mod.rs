//! Split recipes of pet-nlp's data sets: the [`Preparer`]s that `pet_assets::fetch` runs on an
//! extracted asset folder, chosen by the manifest's `split.prepare`, with the seed and fractions
//! of its `[split]` table ([`SplitRecipe`]).
//!
//! | id | preparer | writes |
//! |---|---|---|
//! | `spamassassin` | [`SpamAssassin`] | `train.jsonl`, `dev.jsonl`, `test.jsonl`, `test_hard_ham.jsonl` |
//! | `wnut16` | [`Wnut16`] | `train.conll`, `dev.conll`, `test.conll` |
//!
//! Splits: the examples, in the order each recipe states, are shuffled with
//! [`SplitMix64`]`::new(seed)` (Fisher-Yates), then cut in that order into train, dev and test
//! with `dev = floor(n * dev_fraction)`, `test = floor(n * test_fraction)` and
//! `train = n - dev - test` ([`SplitRecipe::sizes`]).
//!
//! ```no_run
//! use pet_assets::{Catalogue, fetch};
//! use pet_nlp::data::recipes::PREPARERS;
//!
//! # fn main() -> Result<(), pet_assets::AssetError> {
//! let folder = fetch("wnut16", &Catalogue::Builtin, PREPARERS)?;
//! println!("{}", folder.join("train.conll").display());
//! # Ok(())
//! # }
//! ```

mod spamassassin;
mod wnut16;

pub use spamassassin::{
    MAX_EMAIL_CHARS, SPAM_IN_DISTRIBUTION, SPAM_SHIFTED, SpamAssassin, email_text,
};
pub use wnut16::{Sentence, Wnut16, conll_text, parse_tagged};

use pet_assets::{Preparer, SplitRecipe};
use pet_core::rng::SplitMix64;

/// Every preparer of pet-nlp, to pass to `pet_assets::fetch`.
pub const PREPARERS: &[&dyn Preparer] = &[&SpamAssassin, &Wnut16];

/// `items` shuffled with `recipe.seed` and cut into train, dev and test
/// ([`SplitRecipe::sizes`]).
pub fn shuffled_split<T>(mut items: Vec<T>, recipe: &SplitRecipe) -> [Vec<T>; 3] {
    SplitMix64::new(recipe.seed).shuffle(&mut items);
    let [train, dev, _] = recipe.sizes(items.len());
    let mut rest = items.split_off(train);
    let test = rest.split_off(dev);
    [items, rest, test]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A recipe with fractions 0.8 / 0.1 / 0.1.
    pub(crate) fn recipe(prepare: &str, seed: u64) -> SplitRecipe {
        SplitRecipe {
            prepare: prepare.into(),
            seed,
            train: 0.8,
            dev: 0.1,
            test: 0.1,
            recipe: String::new(),
        }
    }

    #[test]
    fn shuffled_split_is_a_deterministic_partition() {
        let items: Vec<usize> = (0..97).collect();
        let a = shuffled_split(items.clone(), &recipe("r", 13));
        let b = shuffled_split(items.clone(), &recipe("r", 13));
        assert_eq!(a, b);
        assert_eq!(a.each_ref().map(Vec::len), [79, 9, 9]);
        let mut all: Vec<usize> = a.concat();
        assert_ne!(all, items, "shuffled");
        all.sort_unstable();
        assert_eq!(all, items);
        assert_ne!(shuffled_split(items, &recipe("r", 14)), a, "the seed matters");
    }

    #[test]
    fn every_committed_data_manifest_names_a_registered_recipe() {
        let catalogue = pet_assets::Catalogue::Builtin;
        for name in catalogue.names().expect("names") {
            let manifest = catalogue.load(&name).expect("manifest");
            let preparer = pet_assets::prepare::preparer_for(&manifest, PREPARERS)
                .map(|found| found.map(Preparer::id))
                .expect("registered");
            assert_eq!(preparer.is_some(), manifest.split.is_some(), "{name}");
        }
        let ids: Vec<&str> = PREPARERS.iter().map(|p| p.id()).collect();
        assert_eq!(ids, ["spamassassin", "wnut16"]);
    }
}
