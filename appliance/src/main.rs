//! `gateway`: the breast-screening DICOM gateway appliance.
//!
//! Subcommands are the operator's whole interface: everything is configured by environment
//! (`/etc/gateway/gateway.env` when installed from the .deb).

use clap::{Parser, Subcommand};
use shared::wire::SigningKey;

/// Connects mammography modalities to the breast-screening cloud app through Azure Relay.
#[derive(Parser)]
#[command(name = "gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a new message-signing key pair as env-file lines (SIGNING_KEY=… and PUBLIC_KEY=…).
    /// Keep SIGNING_KEY in the gateway's env file; give PUBLIC_KEY to the cloud app.
    Keygen,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Keygen => print!("{}", SigningKey::generate().env_lines()),
    }
    Ok(())
}
