//! `ltx2 worker`.

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ltx2 worker` is not built yet")
}
