//! Firewall rules inside a netns: one trait per concern, a file per backend (as netavark's
//! `firewall/{mod,iptables,nft}.rs`), the address family a value of it ([`Family`]), never a
//! second code path.

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

    /// The iptables tool of this backend for `family` (`ip6tables-nft` for nft and IPv6).
    pub fn iptables(self, family: Family) -> Box<dyn Iptables> {
        Box::new(iptables::Xtables { backend: self, family })
    }
}

/// An address family, as netfilter numbers it (`NFPROTO_IPV4`, `NFPROTO_IPV6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The family of an address.
    pub fn of(addr: std::net::IpAddr) -> Family {
        if addr.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    /// `NFPROTO_*`: the nf_log slot, the family of an NFLOG record and of an nf_tables table.
    pub fn nfproto(self) -> u8 {
        match self {
            Family::V4 => 2,
            Family::V6 => 10,
        }
    }

    /// The iptables program of the family (`iptables`, `ip6tables`), which is also the name of
    /// the scenario field holding its `*-save` ruleset.
    pub fn iptables(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    /// The sysctl naming the logger of the family's `nf_log` slot in a netns, through which
    /// iptables-legacy TRACE reports (`net.netfilter.nf_log.2`, `.10`).
    pub fn nf_log_sysctl(self) -> String {
        format!("net.netfilter.nf_log.{}", self.nfproto())
    }

    /// The syslog logger of the family (`nf_log_syslog` registers one per family).
    pub fn syslog_logger(self) -> &'static str {
        match self {
            Family::V4 => "nf_log_ipv4",
            Family::V6 => "nf_log_ipv6",
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

/// Applies, dumps and traces the rulesets of one family in `iptables-save` format.
pub trait Iptables {
    fn backend(&self) -> Backend;
    fn family(&self) -> Family;
    /// Mirrors `ip netns exec NS iptables-restore -w < ruleset` (`ip6tables-restore` for IPv6).
    fn restore(&self, ns: &Netns, ruleset: &str) -> Result<()>;
    /// Mirrors `ip netns exec NS iptables-save`.
    fn save(&self, ns: &Netns) -> Result<String>;
    /// Make every packet of the family TRACE in the netns, after the user's `ruleset` is in:
    /// netpath's own rules first in raw PREROUTING and OUTPUT, unless the ruleset has its own.
    fn enable_trace(&self, ns: &Netns, ruleset: &str) -> Result<()>;
}

/// Run a firewall tool inside `ns`, feeding `stdin`, and return its stdout; a failure names the
/// netns, the command line and the tool's stderr. A tool still running after [`tool::TIMEOUT`]
/// is killed and reported.
pub fn run_tool(ns: &Netns, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut cmd = ns.command(program);
    cmd.args(args);
    tool::checked(cmd, ns.name(), program, &tool::command_line(program, args), stdin)
}
