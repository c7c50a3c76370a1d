//! Integration tests of pet-core: one binary, one module per concern.

mod conformance;
mod fuzz_loaders;
mod learning;
mod peft_parity;
mod training_loop;
