//! One event model for every trace source: a packet met a hook (a chain of a table).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::source::TraceChoice;
use super::verdict::{ChainFacts, RuleText, Verdict};
use crate::evidence::packet::PacketInfo;

/// How an iptables TRACE line says the packet left the chain position it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuleKind {
    /// A rule matched (`filter:FORWARD:rule:3`).
    Rule,
    /// The end of a user-defined chain returned to its caller (`filter:DOCKER:return:2`).
    Return,
    /// The end of a built-in chain, its policy applied (`raw:PREROUTING:policy:2`).
    Policy,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Rule => "rule",
            RuleKind::Return => "return",
            RuleKind::Policy => "policy",
        }
    }
}

/// Where in netfilter a packet was seen, named as the seed articles name it. Serialized as
/// that name (`filter:FORWARD:rule:6`), the way scenario files write paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Hook {
    /// An iptables TRACE position: `table:chain:kind:num`.
    Xt { table: String, chain: String, kind: RuleKind, num: u32 },
    /// An ebtables chain (logged by a rule with prefix `TRACE: eb:table:chain`).
    Eb { table: String, chain: String },
}

impl Hook {
    pub fn xt(table: &str, chain: &str, kind: RuleKind, num: u32) -> Hook {
        Hook::Xt { table: table.into(), chain: chain.into(), kind, num }
    }

    pub fn eb(table: &str, chain: &str) -> Hook {
        Hook::Eb { table: table.into(), chain: chain.into() }
    }

    /// The table, with `eb:` before ebtables tables (`nat` and `eb:nat` differ).
    pub fn table(&self) -> String {
        match self {
            Hook::Xt { table, .. } => table.clone(),
            Hook::Eb { table, .. } => format!("eb:{table}"),
        }
    }

    pub fn chain(&self) -> &str {
        match self {
            Hook::Xt { chain, .. } | Hook::Eb { chain, .. } => chain,
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hook::Xt { table, chain, kind, num } => write!(f, "{table}:{chain}:{}:{num}", kind.as_str()),
            Hook::Eb { table, chain } => write!(f, "eb:{table}:{chain}"),
        }
    }
}

/// Why a hook name did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a hook: {why} (want `table:chain:rule|return|policy:N` or `eb:table:chain`)")]
pub struct HookParseError {
    pub text: String,
    pub why: String,
}

impl FromStr for Hook {
    type Err = HookParseError;

    fn from_str(s: &str) -> Result<Hook, HookParseError> {
        let err = |why: &str| HookParseError { text: s.to_string(), why: why.to_string() };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err("an empty part"));
        }
        match parts.as_slice() {
            ["eb", table, chain] => Ok(Hook::eb(table, chain)),
            [table, chain, kind, num] => {
                let kind = match *kind {
                    "rule" => RuleKind::Rule,
                    "return" => RuleKind::Return,
                    "policy" => RuleKind::Policy,
                    _ => return Err(err("the third part must be rule, return or policy")),
                };
                let num = num.parse().map_err(|_| err("the rule number is not a number"))?;
                Ok(Hook::xt(table, chain, kind, num))
            }
            _ => Err(err("wrong number of parts")),
        }
    }
}

impl Serialize for Hook {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hook {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hook, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The interfaces the kernel reported with the event, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ifaces {
    pub indev: Option<String>,
    pub outdev: Option<String>,
    pub physindev: Option<String>,
    pub physoutdev: Option<String>,
}

/// A packet met a hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// The lab's name of the netns the event happened in (`host`), empty when unknown.
    pub netns: String,
    pub hook: Hook,
    pub ifaces: Ifaces,
    /// The packet as the kernel saw it at this hook.
    pub packet: PacketInfo,
    /// The raw L3 bytes, where the source delivers them.
    #[serde(skip)]
    pub payload: Option<Vec<u8>>,
    /// The nonce of the probe packet this is, when a source without payloads (nf_tables
    /// trace) resolved it from the headers.
    #[serde(skip)]
    pub nonce: Option<Vec<u8>>,
    /// The source that delivered it; `None` for an event read from text (the seed articles, a
    /// saved log).
    #[serde(with = "super::source::origin")]
    pub source: Option<TraceChoice>,
    /// What the rule or the chain's policy decided; `None` where nothing says (an ebtables
    /// chain's entry, an event read from text, a rule whose target netpath does not know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The rule a `rule:N` event names, where its ruleset was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleText>,
    /// The chain's family, type and hook, where its ruleset was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainFacts>,
}
