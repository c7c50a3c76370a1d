//! Integration tests of pet-nlp: one binary, one module per concern.

mod encoders;
mod tokenizer;
