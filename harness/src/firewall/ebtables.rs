//! ebtables through ebtables-nft (this kernel has no legacy ebtables tables), and the NFLOG
//! rules that make every bridge chain report the packets it sees.

use super::run_tool;
use crate::error::Result;
use crate::lab::netns::Netns;

/// The NFLOG group ebtables trace rules log to; group 0 is iptables TRACE's (nf_log) and
/// ebtables-nft rejects group 0.
pub const TRACE_GROUP: u16 = 1;

/// The chains of each ebtables table, in the order the kernel's tables define them.
pub const CHAINS: &[(&str, &[&str])] = &[
    ("broute", &["BROUTING"]),
    ("nat", &["PREROUTING", "OUTPUT", "POSTROUTING"]),
    ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
];

/// Mirrors `ip netns exec NS ebtables-nft-restore --noflush < rules` for rules in
/// `ebtables-save` format.
pub fn restore(ns: &Netns, rules: &str) -> Result<()> {
    run_tool(ns, "ebtables-nft-restore", &["--noflush"], Some(rules)).map(drop)
}

/// Mirrors `ip netns exec NS ebtables-nft-save`.
pub fn save(ns: &Netns) -> Result<String> {
    run_tool(ns, "ebtables-nft-save", &[], None)
}

/// Whether an ebtables table can be used in this netns (`broute` is missing on kernels without
/// CONFIG_BRIDGE_EBT_BROUTE / nft bridge broute support).
pub fn has_table(ns: &Netns, table: &str) -> bool {
    run_tool(ns, "ebtables-nft", &["-t", table, "-L"], None).is_ok()
}

/// The log level of the kernel-log trace rules (info), as in the seed article.
pub const LOG_LEVEL: u8 = 6;

/// How a trace rule reports the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceVia {
    /// `--nflog-group TRACE_GROUP --nflog-prefix ...`: to an NFLOG socket of the netns.
    Nflog,
    /// `--log --log-level 6 --log-ip --log-prefix ...`: to the kernel log, the article's rules.
    Log,
}

/// The `ebtables-save` text that logs every IPv4 frame at the top of each chain of `tables`
/// with the seed article's prefix (`TRACE: eb:nat:PREROUTING`) and lets it CONTINUE, so the
/// user's own ebtables rules still decide; reported through `via`.
pub fn trace_rules(tables: &[&str], via: TraceVia) -> String {
    let mut out = String::new();
    for (table, chains) in CHAINS.iter().filter(|(t, _)| tables.contains(t)) {
        out.push_str(&format!("*{table}\n"));
        for chain in chains.iter() {
            let prefix = format!("\"TRACE: eb:{table}:{chain}\"");
            let action = match via {
                TraceVia::Nflog => format!("--nflog-group {TRACE_GROUP} --nflog-prefix {prefix}"),
                TraceVia::Log => format!("--log --log-level {LOG_LEVEL} --log-ip --log-prefix {prefix}"),
            };
            out.push_str(&format!("-I {chain} 1 -p IPv4 {action} -j CONTINUE\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_rules_log_as_the_article_or_to_nflog() {
        let log = trace_rules(&["nat"], TraceVia::Log);
        assert_eq!(
            log.lines().nth(1),
            Some(
                "-I PREROUTING 1 -p IPv4 --log --log-level 6 --log-ip --log-prefix \"TRACE: eb:nat:PREROUTING\" -j CONTINUE"
            )
        );
        assert_eq!(log.lines().count(), 4);
        let nflog = trace_rules(&["filter"], TraceVia::Nflog);
        assert!(
            nflog.starts_with("*filter\n-I INPUT 1 -p IPv4 --nflog-group 1 --nflog-prefix \"TRACE: eb:filter:INPUT\"")
        );
        // ebtables keeps at most 29 bytes of a prefix.
        for (table, chains) in CHAINS {
            for chain in chains.iter() {
                assert!(format!("TRACE: eb:{table}:{chain}").len() <= 29);
            }
        }
    }
}
