//! `ltx2 inspect`.

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ltx2 inspect` is not built yet")
}
