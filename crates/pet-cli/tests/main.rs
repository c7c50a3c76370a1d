//! Integration tests of the `pet` command line.

#[cfg(unix)]
mod bad_inputs;
mod bench;
mod deberta;
mod device_smoke;
mod export;
mod fixtures;
mod inputs;
mod inspect;
#[cfg(feature = "ndarray")]
mod ndarray;
mod predict_encode;
mod predict_peft;
mod pretokenized;
mod real_minilm;
mod train;
