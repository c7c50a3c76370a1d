//! Integration tests of pet-nlp: one binary, one module per concern.

mod crf;
mod deberta;
mod encoders;
mod fixtures;
mod fuzz_configs;
mod fuzz_readers;
mod heads;
mod loaders;
mod tasks;
mod tokenizer;
