//! The [`Model`] of a netns's rulesets as the kernel holds them, for the check after the steps
//! ran (rulesets a step wrote are known only then): x_tables through `iptables-legacy-save` and
//! `ip6tables-legacy-save`, nf_tables (iptables-nft's tables and native ones alike) through
//! `nft -j list ruleset`, read with [`RuleIndex`], the reader that names nf_tables trace events.
//! `iptables-nft-save` is not read: it lists built-in chains that do not exist (and so report
//! nothing) where a table has some of them only.

use super::check::Model;
use super::iptables;
use crate::error::Result;
use crate::firewall::{Backend, Family, run_tool};
use crate::lab::netns::Netns;
use crate::observe::trace::nft_events::TRACE_TABLE;
use crate::observe::trace::nftrace::RuleIndex;

/// Reads the live rulesets of `ns` (called `name` in the scenario); `eb` are the ebtables chains
/// netpath traces there ([`super::scenario::traced_eb`]).
pub fn read(ns: &Netns, name: &str, eb: Vec<(String, String)>) -> Result<Model> {
    let mut m = Model { netns: name.to_string(), eb, ..Model::default() };
    for family in Family::ALL {
        let save = Backend::Legacy.iptables(family).save(ns)?;
        let set = iptables::parse(&save, if family == Family::V6 { "ip6" } else { "ip" });
        if !set.tables.is_empty() {
            m.rulesets.push(set);
        }
    }
    let json = run_tool(ns, "nft", &["-j", "list", "ruleset"], None)?;
    match RuleIndex::from_nft_json(&json) {
        Ok(index) => {
            for mut set in index.rulesets() {
                set.tables.retain(|t| t.name != TRACE_TABLE);
                m.rulesets.push(set);
            }
        }
        // Not judged rather than judged wrong.
        Err(_) => m.opaque = true,
    }
    Ok(m)
}
