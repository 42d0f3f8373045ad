//! One file per subcommand: its clap `Args` and a `run`.

pub mod bench;
pub mod bench_block;
pub mod bench_lora;
pub mod bench_mem;
pub mod generate;
pub mod inspect;
pub mod inspect_memory;
pub mod serve;
pub mod worker;
