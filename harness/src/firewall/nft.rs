//! Native nftables rulesets, applied with `nft -f` inside a netns.

use super::run_tool;
use crate::error::Result;
use crate::lab::netns::Netns;

/// Mirrors `ip netns exec NS nft -f - < ruleset`.
pub fn apply(ns: &Netns, ruleset: &str) -> Result<()> {
    run_tool(ns, "nft", &["-f", "-"], Some(ruleset)).map(drop)
}

/// Mirrors `ip netns exec NS nft list ruleset`.
pub fn save(ns: &Netns) -> Result<String> {
    run_tool(ns, "nft", &["list", "ruleset"], None)
}
