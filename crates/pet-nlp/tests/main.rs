//! Integration tests of pet-nlp: one binary, one module per concern.

mod crf;
mod encoders;
mod heads;
mod tokenizer;
