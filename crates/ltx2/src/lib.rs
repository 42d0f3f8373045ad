//! The CLI's library half: model resolution (`--model hub`) shared by the subcommands and tests,
//! and the process settings `main` applies.

pub mod hub;
pub mod model;
pub mod process;
