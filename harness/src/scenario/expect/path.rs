//! `[[probe.path]]`: the hooks a probe's packets meet in a netns ([`PathExpect`]), with the
//! patterns of `never` ([`HookPattern`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Conditions, Direction, Packets};
use crate::firewall::Backend;
use crate::kernel::KernelRange;
use crate::observe::trace::Hook;
use crate::scenario::validate::{Problems, Topology};
use crate::scenario::{ProbeSpec, Scenario};

/// A pattern over hooks: `nat` (any chain of the nat table), `nat:POSTROUTING`, `eb:nat`,
/// `filter:FORWARD:rule:3`; `*` matches any one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookPattern(Vec<String>);

impl HookPattern {
    /// Whether `hook` matches, `*` standing for any one part.
    pub fn matches(&self, hook: &Hook) -> bool {
        let text = hook.to_string();
        let parts: Vec<&str> = text.split(':').collect();
        self.0.len() <= parts.len() && self.0.iter().zip(parts).all(|(p, h)| p == "*" || p == h)
    }
}

impl FromStr for HookPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<String> = s.split(':').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) || parts.len() > 4 {
            return Err(format!("`{s}` is not a hook pattern (want e.g. nat, nat:POSTROUTING, eb:nat:OUTPUT)"));
        }
        Ok(HookPattern(parts))
    }
}

impl fmt::Display for HookPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(":"))
    }
}

impl Serialize for HookPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HookPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HookPattern, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

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
    pub exact: Option<Vec<Hook>>,
    /// These hooks in this order, others may stand between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Vec<Hook>>,
    /// No hook matching any of these patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub never: Vec<HookPattern>,
    /// The last hook the packet met in this netns: where it was dropped, or where it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Hook>,
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
    }
}
