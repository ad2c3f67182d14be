//! ebtables through ebtables-nft (this kernel has no legacy ebtables tables), and the NFLOG
//! rules that make every bridge chain report the packets it sees.

use super::run_tool;
use crate::error::Result;
use crate::netns::Netns;

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

/// The `ebtables-save` text that logs every IPv4 frame at the top of each chain of `tables`
/// with the seed article's prefix (`TRACE: eb:nat:PREROUTING`) and lets it CONTINUE, so the
/// user's own ebtables rules still decide.
pub fn trace_rules(tables: &[&str]) -> String {
    let mut out = String::new();
    for (table, chains) in CHAINS.iter().filter(|(t, _)| tables.contains(t)) {
        out.push_str(&format!("*{table}\n"));
        for chain in chains.iter() {
            out.push_str(&format!(
                "-I {chain} 1 -p IPv4 --nflog-group {TRACE_GROUP} --nflog-prefix \"TRACE: eb:{table}:{chain}\" -j CONTINUE\n"
            ));
        }
    }
    out
}
