//! iptables backends: the same `iptables-save` text applied through x_tables or nf_tables, for
//! IPv4 (`iptables`) or IPv6 (`ip6tables`).

use super::{Backend, Family, Iptables, run_tool};
use crate::error::Result;
use crate::lab::netns::Netns;

/// An iptables tool: `{iptables,ip6tables}-{legacy,nft}`, x_tables or the iptables syntax
/// compiled to nf_tables, for one family. The four differ only in the program's name.
pub struct Xtables {
    pub backend: Backend,
    pub family: Family,
}

impl Xtables {
    /// `ip6tables-nft-restore` for the nft backend, IPv6 and `verb` `restore`.
    fn program(&self, verb: &str) -> String {
        format!("{}-{}-{verb}", self.family.iptables(), self.backend.name())
    }
}

impl Iptables for Xtables {
    fn backend(&self) -> Backend {
        self.backend
    }
    fn family(&self) -> Family {
        self.family
    }
    fn restore(&self, ns: &Netns, ruleset: &str) -> Result<()> {
        run_tool(ns, &self.program("restore"), &["-w"], Some(ruleset)).map(drop)
    }
    fn save(&self, ns: &Netns) -> Result<String> {
        run_tool(ns, &self.program("save"), &[], None)
    }
    fn enable_trace(&self, ns: &Netns, ruleset: &str) -> Result<()> {
        if has_trace_rule(ruleset) {
            return Ok(());
        }
        // --noflush: keep the user's raw table.
        run_tool(ns, &self.program("restore"), &["-w", "--noflush"], Some(TRACE_RULESET)).map(drop)
    }
}

/// Whether a ruleset already sets up its own TRACE (then netpath adds none, so its rule
/// numbers stay the user's).
pub fn has_trace_rule(ruleset: &str) -> bool {
    ruleset.lines().any(|l| l.split_whitespace().collect::<Vec<_>>().windows(2).any(|w| w == ["-j", "TRACE"]))
}

/// Rules that TRACE every packet of the netns (of the family of the tool restoring them), put first in raw PREROUTING and OUTPUT as
/// the seed article does (so `raw:PREROUTING:policy:2` reads the same).
pub const TRACE_RULESET: &str = "*raw\n-I PREROUTING 1 -j TRACE\n-I OUTPUT 1 -j TRACE\nCOMMIT\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_and_family_is_its_program() {
        let program = |backend, family| Xtables { backend, family }.program("restore");
        assert_eq!(program(Backend::Legacy, Family::V4), "iptables-legacy-restore");
        assert_eq!(program(Backend::Nft, Family::V4), "iptables-nft-restore");
        assert_eq!(program(Backend::Legacy, Family::V6), "ip6tables-legacy-restore");
        assert_eq!(Xtables { backend: Backend::Nft, family: Family::V6 }.program("save"), "ip6tables-nft-save");
    }

    #[test]
    fn finds_trace_rules() {
        assert!(has_trace_rule("*raw\n-A PREROUTING -p icmp -j TRACE\nCOMMIT\n"));
        assert!(!has_trace_rule("*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n"));
        assert!(!has_trace_rule("# -j TRACEX\n"));
    }
}
