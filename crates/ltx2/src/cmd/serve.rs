//! `ltx2 serve`.

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ltx2 serve` is not built yet")
}
