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
        vacuous(sc, i, j, e, ps);
    }
}

/// The patterns of entry `probe[i].path[j]` that name nothing in its netns (see
/// [`crate::ruleset::check`]), judged under each backend the entry applies to, where the
/// scenario's own rulesets say what the netns holds (no step runs in it; else after the steps).
fn vacuous(sc: &Scenario, i: usize, j: usize, e: &PathExpect, ps: &mut Problems) {
    let Some(n) = sc.netns.iter().find(|n| n.name == e.netns) else { return };
    let mut seen: Vec<(&'static str, usize)> = vec![];
    for backend in sc.backends.iter().filter(|b| e.backend.is_none_or(|eb| eb == **b)) {
        let Some(model) = crate::ruleset::scenario::model(sc, n, *backend) else { return };
        for (key, k, message) in model.vacuous(e) {
            if seen.contains(&(key, k)) {
                continue;
            }
            seen.push((key, k));
            let under = if sc.backends.len() > 1 && e.backend.is_none() && !model_same_for_all(sc, n, key, k, e) {
                format!(" under backend {}", backend.name())
            } else {
                String::new()
            };
            let item = crate::ruleset::check::pattern_item(i, j, key, k);
            ps.add(item, format!("{message}{under}"));
        }
    }
}

/// Whether entry item `key[k]` names nothing under every backend of the scenario.
fn model_same_for_all(sc: &Scenario, n: &crate::scenario::NetnsSpec, key: &str, k: usize, e: &PathExpect) -> bool {
    sc.backends.iter().all(|b| {
        crate::ruleset::scenario::model(sc, n, *b)
            .is_some_and(|m| m.vacuous(e).iter().any(|(kk, kx, _)| *kk == key && *kx == k))
    })
}
