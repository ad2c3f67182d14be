//! iptables backends: the same `iptables-save` text applied through x_tables or nf_tables.

use super::{Backend, Iptables, run_tool};
use crate::error::Result;
use crate::lab::netns::Netns;

/// `iptables-legacy`: x_tables, the kernel's original rule engine.
pub struct Legacy;

/// `iptables-nft`: the iptables syntax compiled to nf_tables.
pub struct Nft;

impl Iptables for Legacy {
    fn backend(&self) -> Backend {
        Backend::Legacy
    }
    fn restore(&self, ns: &Netns, ruleset: &str) -> Result<()> {
        run_tool(ns, "iptables-legacy-restore", &["-w"], Some(ruleset)).map(drop)
    }
    fn save(&self, ns: &Netns) -> Result<String> {
        run_tool(ns, "iptables-legacy-save", &[], None)
    }
}

impl Iptables for Nft {
    fn backend(&self) -> Backend {
        Backend::Nft
    }
    fn restore(&self, ns: &Netns, ruleset: &str) -> Result<()> {
        run_tool(ns, "iptables-nft-restore", &["-w"], Some(ruleset)).map(drop)
    }
    fn save(&self, ns: &Netns) -> Result<String> {
        run_tool(ns, "iptables-nft-save", &[], None)
    }
}

/// Whether a ruleset already sets up its own TRACE (then netpath adds none, so its rule
/// numbers stay the user's).
pub fn has_trace_rule(ruleset: &str) -> bool {
    ruleset.lines().any(|l| l.split_whitespace().collect::<Vec<_>>().windows(2).any(|w| w == ["-j", "TRACE"]))
}

/// Rules that TRACE every IPv4 packet of the netns, put first in raw PREROUTING and OUTPUT as
/// the seed article does (so `raw:PREROUTING:policy:2` reads the same).
pub const TRACE_RULESET: &str = "*raw\n-I PREROUTING 1 -j TRACE\n-I OUTPUT 1 -j TRACE\nCOMMIT\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_trace_rules() {
        assert!(has_trace_rule("*raw\n-A PREROUTING -p icmp -j TRACE\nCOMMIT\n"));
        assert!(!has_trace_rule("*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n"));
        assert!(!has_trace_rule("# -j TRACEX\n"));
    }
}
