//! The `pet` command line: device selection and the subcommands, as a library so that tests
//! drive them without spawning processes.

pub mod assets;
pub mod device;
pub mod inspect;
pub mod prepare;
pub mod train;
