//! `[[probe.path]]`: the hooks a probe's packets meet in a netns ([`PathExpect`]); how its
//! entries name hooks is in `pattern.rs`.

use serde::{Deserialize, Serialize};

use super::pattern::{HookPattern, PathHook};
use super::{Conditions, Direction, Packets};
use crate::firewall::Backend;
use crate::kernel::KernelRange;
use crate::scenario::validate::{Problems, Topology};
use crate::scenario::{ProbeSpec, Scenario};

/// What the hooks of a probe's packets in one netns must be. Without `packet` and
/// `answered_by` it holds for every packet of the probe; see [`PathExpect::applies`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathExpect {
    /// Which packets of the flow (1 = the first); every packet when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet: Option<Packets>,
    /// Only the packets this server netns answered: one entry per endpoint of a load split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// The packet's direction this entry is about.
    #[serde(default = "super::request", skip_serializing_if = "super::is_request")]
    pub direction: Direction,
    /// The netns whose hooks are checked.
    pub netns: String,
    /// Only under this backend: paths that really differ by backend are written as variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// Only on kernels in this range (`">=6.1"`): paths that really differ by kernel are variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelRange>,
    /// The whole sequence, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<Vec<PathHook>>,
    /// These hooks in this order, others may stand between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Vec<PathHook>>,
    /// No hook matching any of these patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub never: Vec<HookPattern>,
    /// The last hook the packet met in this netns: where it was dropped, or where it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<PathHook>,
}

impl PathExpect {
    /// An entry about every packet of the probe in `netns`, asserting nothing yet.
    pub fn new(direction: Direction, netns: &str) -> PathExpect {
        PathExpect {
            packet: None,
            answered_by: None,
            direction,
            netns: netns.into(),
            backend: None,
            kernel: None,
            exact: None,
            includes: None,
            never: vec![],
            last: None,
        }
    }
}

impl PathExpect {
    /// The entry's conditions (see [`Conditions`]).
    pub fn conditions(&self) -> Conditions<'_> {
        Conditions {
            packet: self.packet,
            answered_by: self.answered_by.as_deref(),
            backend: self.backend,
            kernel: self.kernel.as_ref(),
        }
    }
}

/// What is wrong with the path entries of probe `p` (`probe[i]`) of `sc`.
pub(in crate::scenario) fn problems(sc: &Scenario, t: &Topology<'_>, i: usize, p: &ProbeSpec, ps: &mut Problems) {
    for (j, e) in p.path.iter().enumerate() {
        t.known(format!("probe[{i}].path[{j}].netns"), &e.netns, ps);
        if e.exact.is_none() && e.includes.is_none() && e.never.is_empty() && e.last.is_none() {
            ps.add(format!("probe[{i}].path[{j}]"), "asserts nothing: give exact, includes, never or last");
        }
        e.conditions().problems(&format!("probe[{i}].path[{j}]"), sc, p, ps);
        for (k, pattern) in e.never.iter().enumerate() {
            if let Some(why) = names_no_table(sc, &e.netns, pattern) {
                ps.add(format!("probe[{i}].path[{j}].never[{k}]"), why);
            }
        }
    }
}

/// Why `pattern` can match nothing in `netns`: it names a table the netns's own rulesets do
/// not have, so `never` would pass whatever the packet met. Not known before the run where
/// steps write the netns's rules, nor for ebtables (netpath adds its trace rules to its chains).
fn names_no_table(sc: &Scenario, netns: &str, pattern: &HookPattern) -> Option<String> {
    let table = pattern.table().filter(|t| *t != "eb")?;
    let n = sc.netns.iter().find(|n| n.name == netns)?;
    if sc.step.iter().any(|s| s.netns == netns) {
        return None;
    }
    let mut tables: Vec<String> = vec![];
    for (_, rules) in n.iptables_rulesets() {
        tables.extend(rules.lines().filter_map(|l| l.trim().strip_prefix('*')).map(|t| t.trim().to_string()));
    }
    if sc.has_trace_rules(n) && n.iptables_rulesets().next().is_some() {
        // netpath's own TRACE rules go in the raw table.
        tables.push("raw".into());
    }
    tables.dedup();
    if let Some(nft) = &n.nft {
        tables.extend(nft_tables(nft));
    }
    if tables.iter().any(|t| t == table) {
        return None;
    }
    let has = if tables.is_empty() { "no table at all".to_string() } else { format!("tables {}", tables.join(", ")) };
    let hint = if n.nft.is_some() && table == "nat" { "; to mean any NAT chain write `type:nat`" } else { "" };
    Some(format!("`{pattern}` names table {table}, which netns {netns} does not have (it has {has}){hint}"))
}

/// The table names an nft script declares (`table ip nat {`, `table nat {`).
fn nft_tables(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().take_while(|w| *w != "{").collect();
            match words.as_slice() {
                ["table", name] | ["add" | "create", "table", name] => Some(name.to_string()),
                ["table", _family, name] | ["add" | "create", "table", _family, name] => Some(name.to_string()),
                _ => None,
            }
        })
        .collect()
}
