//! Firewall rules inside a netns: one trait per concern, a file per backend (as netavark's
//! `firewall/{mod,iptables,nft}.rs`).

pub mod ebtables;
pub mod iptables;
pub mod located;
pub mod nft;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lab::netns::Netns;
use crate::tool;

/// Which iptables implementation applies an `iptables-save` ruleset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// x_tables through `iptables-legacy-restore`; TRACE through nf_log.
    #[default]
    Legacy,
    /// nf_tables through `iptables-nft-restore`; TRACE through nf_tables trace events.
    Nft,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Legacy => "legacy",
            Backend::Nft => "nft",
        }
    }

    pub fn iptables(self) -> Box<dyn Iptables> {
        match self {
            Backend::Legacy => Box::new(iptables::Legacy),
            Backend::Nft => Box::new(iptables::Nft),
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "legacy" => Ok(Backend::Legacy),
            "nft" => Ok(Backend::Nft),
            _ => Err(format!("unknown backend `{s}` (want legacy or nft)")),
        }
    }
}

/// Applies and dumps IPv4 rulesets in `iptables-save` format.
pub trait Iptables {
    fn backend(&self) -> Backend;
    /// Mirrors `ip netns exec NS iptables-restore -w < ruleset`.
    fn restore(&self, ns: &Netns, ruleset: &str) -> Result<()>;
    /// Mirrors `ip netns exec NS iptables-save`.
    fn save(&self, ns: &Netns) -> Result<String>;
}

/// Run a firewall tool inside `ns`, feeding `stdin`, and return its stdout; a failure names the
/// netns, the command line and the tool's stderr. A tool still running after [`tool::TIMEOUT`]
/// is killed and reported.
pub fn run_tool(ns: &Netns, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut cmd = ns.command(program);
    cmd.args(args);
    tool::checked(cmd, ns.name(), program, &tool::command_line(program, args), stdin)
}
