//! Split recipes of pet-nlp's data sets: the [`Preparer`]s that `pet_assets::fetch` runs on an
//! extracted asset folder, chosen by the manifest's `split.prepare`, with the seed and fractions
//! of its `[split]` table ([`SplitRecipe`]).
//!
//! | id | preparer | writes |
//! |---|---|---|
//! | `spamassassin` | [`SPAMASSASSIN`] | `train.jsonl`, `dev.jsonl`, `test.jsonl`, `test_hard_ham.jsonl` |
//! | `wnut16` | [`WNUT16`] | `train.conll`, `dev.conll`, `test.conll` |
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
    MAX_EMAIL_CHARS, SPAM_IN_DISTRIBUTION, SPAM_SHIFTED, SPAMASSASSIN, email_text,
};
pub use wnut16::{Sentence, WNUT16, conll_text, parse_tagged};

use std::path::Path;

use pet_assets::{PrepareError, Prepared, Preparer, SplitRecipe};
use pet_core::rng::SplitMix64;

use crate::error::Result;

/// Every preparer of pet-nlp, to pass to `pet_assets::fetch`.
pub const PREPARERS: &[&dyn Preparer] = &[&SPAMASSASSIN, &WNUT16];

/// One of pet-nlp's recipes as a [`Preparer`]: its id, the files it writes and the function
/// that writes them.
#[derive(Clone, Copy, Debug)]
pub struct Recipe {
    /// The id a manifest's `split.prepare` names.
    pub id: &'static str,
    /// The files it writes, relative to the asset folder.
    pub outputs: &'static [&'static str],
    /// Writes the splits of the data set extracted in a folder, following the `[split]` table.
    pub run: fn(&Path, &SplitRecipe) -> Result<Vec<Prepared>>,
}

impl Preparer for Recipe {
    fn id(&self) -> &'static str {
        self.id
    }

    fn outputs(&self) -> &'static [&'static str] {
        self.outputs
    }

    fn prepare(&self, dir: &Path, recipe: &SplitRecipe) -> Result<Vec<Prepared>, PrepareError> {
        Ok((self.run)(dir, recipe)?)
    }
}

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
