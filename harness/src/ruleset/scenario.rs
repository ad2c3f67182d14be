//! The [`Model`] of a netns's rulesets as the scenario file writes them, for the check when a
//! file loads: what the lab will hold once netpath applied them under a backend.

use super::check::Model;
use super::{iptables, nft};
use crate::firewall::Backend;
use crate::firewall::ebtables;
use crate::firewall::iptables::has_trace_rule;
use crate::scenario::{NetnsSpec, Scenario};

/// The model of netns `n` under `backend`, or `None` where a step runs in it (its rulesets are
/// known only after the steps: [`super::live`]).
///
/// What netpath adds is in it: the TRACE rule it puts first in raw PREROUTING and OUTPUT of a
/// traced iptables ruleset (which shifts the user's raw rules by one, unless the ruleset has its
/// own `-j TRACE`), the ebtables chains it traces in a bridge netns. iptables-legacy makes every
/// built-in chain of a table it restores; iptables-nft only those the file declares or uses.
/// A table with restore commands other than `-A`/`-I` and `:CHAIN` declarations is left unread,
/// and so is an nft table the script parser does not follow ([`nft`]).
pub fn model(sc: &Scenario, n: &NetnsSpec, backend: Backend) -> Option<Model> {
    if sc.step.iter().any(|s| s.netns == n.name) {
        return None;
    }
    let mut m = Model { netns: n.name.clone(), eb: traced_eb(sc, n), ..Model::default() };
    for (family, text) in n.iptables_rulesets() {
        let text = if n.trace && !has_trace_rule(text) {
            // Applied after the user's, with --noflush: first in its chains.
            format!("{text}\n{}", crate::firewall::iptables::TRACE_RULESET)
        } else {
            text.to_string()
        };
        let mut set = iptables::parse(&text, if family == crate::firewall::Family::V6 { "ip6" } else { "ip" });
        // Two `*raw` sections (the user's and netpath's) are one table.
        merge_repeated_tables(&mut set);
        if backend == Backend::Legacy {
            iptables::add_builtins(&mut set);
        }
        m.unread.extend(unread_iptables_tables(&text));
        m.rulesets.push(set);
    }
    if let Some(script) = &n.nft {
        let s = nft::parse(script);
        m.opaque |= s.opaque;
        m.unread.extend(s.unread);
        m.rulesets.extend(s.rulesets);
    }
    Some(m)
}

/// The ebtables chains netpath traces in `n`: every chain of every table where a traced netns
/// has a bridge (`broute` only where the kernel has it: here it counts as there).
pub fn traced_eb(sc: &Scenario, n: &NetnsSpec) -> Vec<(String, String)> {
    if !(n.trace && sc.has_bridge(&n.name)) {
        return vec![];
    }
    ebtables::CHAINS.iter().flat_map(|(t, cs)| cs.iter().map(|c| (t.to_string(), c.to_string()))).collect()
}

fn merge_repeated_tables(set: &mut super::Ruleset) {
    let mut out: Vec<super::Table> = vec![];
    for t in std::mem::take(&mut set.tables) {
        match out.iter_mut().find(|o| o.name == t.name) {
            Some(o) => {
                for c in t.chains {
                    match o.chains.iter_mut().find(|oc| oc.name == c.name) {
                        Some(oc) => {
                            // Inserted rules go first; a re-declared chain keeps its rules.
                            let mut rules = c.rules;
                            rules.append(&mut oc.rules);
                            oc.rules = rules;
                        }
                        None => o.chains.push(c),
                    }
                }
            }
            None => out.push(t),
        }
    }
    set.tables = out;
}

/// Tables of a restore file with commands the model does not follow (`-D`, `-R`, `-F`, `-N`...).
fn unread_iptables_tables(text: &str) -> Vec<String> {
    let mut table = String::new();
    let mut out = vec![];
    for line in text.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_string();
        } else if line.starts_with('-') && !line.starts_with("-A ") && !line.starts_with("-I ") && !out.contains(&table)
        {
            out.push(table.clone());
        }
    }
    out
}
