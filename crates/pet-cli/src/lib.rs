//! The `pet` command line: device selection and the subcommands, as a library so that tests
//! drive them without spawning processes.

pub mod args;
pub mod bench;
pub mod device;
pub mod encode;
pub mod export;
pub mod fetch;
pub mod inspect;
pub mod predict;
pub mod train;
