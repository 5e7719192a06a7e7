//! `web`: the clinicians' cloud app. Until the web app lands this binary only manages keys.

use clap::{Parser, Subcommand};
use shared::wire::SigningKey;

/// The breast-screening cloud web app.
#[derive(Parser)]
#[command(name = "web", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a new message-signing key pair as env-file lines (SIGNING_KEY=… and PUBLIC_KEY=…).
    /// Keep SIGNING_KEY in the web app's environment; give PUBLIC_KEY to each gateway.
    Keygen,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Keygen => print!("{}", SigningKey::generate().env_lines()),
    }
    Ok(())
}
