//! Integration tests of pet-core: one binary, one module per concern.

mod conformance;
mod learning;
mod peft_parity;
mod training_loop;
