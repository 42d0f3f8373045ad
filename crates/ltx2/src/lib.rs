//! The CLI's library half: model resolution (`--model hub`) shared by the subcommands and tests.

pub mod hub;
pub mod model;
