//! Rulesets as netpath reads them back from a netns (or from a scenario file): tables, chains
//! with their type, hook and policy, rules with their text, comment and verdict. Trace sources
//! that report only a hook's name (legacy TRACE through NFLOG or the kernel log) take the
//! verdict of each event from here.
//!
//! `nft -j list ruleset` is read by [`crate::observe::trace::nftrace::RuleIndex`], which names
//! nf_tables trace events by rule handle (and gives its listing as [`Ruleset`]s).
//!
//! [`check`] judges path patterns against a [`Model`] of a netns's rulesets: built from the
//! scenario's texts when a file loads ([`scenario`], with [`nft`] reading nft scripts), read from
//! the live netns after the steps ([`live`]).

pub mod check;
pub mod iptables;
pub mod live;
pub mod nft;
pub mod scenario;

pub use check::Model;

use crate::observe::trace::{ChainFacts, Hook, RuleKind, RuleText, Verdict};

/// One rule of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule as its listing writes it (`-A INPUT -p tcp -j ACCEPT`).
    pub text: String,
    /// Its comment, if it has one.
    pub comment: Option<String>,
    /// What it decides when it matches; `None` for a target netpath does not know.
    pub verdict: Option<Verdict>,
}

/// One chain of a table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    /// Its name (`INPUT`, `DOCKER`).
    pub name: String,
    /// The chain's type (`filter`, `nat`, `route`).
    pub kind: Option<String>,
    /// The hook of a base chain (`input`); `None` for a user chain.
    pub hook: Option<String>,
    /// The policy of a base chain.
    pub policy: Option<Verdict>,
    /// Its rules in order (rule 1 first).
    pub rules: Vec<Rule>,
}

/// One table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    /// Its name (`filter`, `nat`).
    pub name: String,
    /// Its chains in listing order.
    pub chains: Vec<Chain>,
}

impl Table {
    /// The chain called `name`.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }
}

/// The tables of one family of a netns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    /// The nft family (`ip`, `ip6`).
    pub family: String,
    /// Its tables.
    pub tables: Vec<Table>,
}

/// What a ruleset says about the place a trace event names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookFacts {
    /// What was decided there.
    pub verdict: Option<Verdict>,
    /// The rule that decided (a `rule:N` event).
    pub rule: Option<RuleText>,
    /// The chain it is in.
    pub chain: Option<ChainFacts>,
}

impl Ruleset {
    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The verdict, rule and chain of an iptables TRACE position: a rule's verdict, `return`
    /// for a `return:N` (an explicit RETURN or the end of a user chain), the policy of a base
    /// chain. Empty for an ebtables hook or a
    /// place the ruleset does not have (it changed after the packet passed).
    pub fn facts(&self, hook: &Hook) -> HookFacts {
        let Hook::Xt { table, chain, kind, num } = hook else { return HookFacts::default() };
        let Some(c) = self.table(table).and_then(|t| t.chain(chain)) else { return HookFacts::default() };
        let facts = Some(ChainFacts { family: self.family.clone(), kind: c.kind.clone(), hook: c.hook.clone() });
        let at_end = *num as usize == c.rules.len() + 1;
        let text =
            |r: &Rule| RuleText::new(r.text.clone(), r.comment.clone(), c.rules.iter().map(|o| o.comment.as_deref()));
        match kind {
            RuleKind::Rule => match c.rules.get((*num as usize).wrapping_sub(1)) {
                Some(r) => HookFacts { verdict: r.verdict.clone(), rule: Some(text(r)), chain: facts },
                None => HookFacts { chain: facts, ..HookFacts::default() },
            },
            // Legacy TRACE says `return:N` both for an explicit RETURN rule N and for the end of
            // a user chain (N = rules + 1).
            RuleKind::Return => HookFacts {
                verdict: Some(Verdict::Return),
                rule: c.rules.get((*num as usize).wrapping_sub(1)).map(text),
                chain: facts,
            },
            RuleKind::Policy if at_end => HookFacts { verdict: c.policy.clone(), rule: None, chain: facts },
            _ => HookFacts { chain: facts, ..HookFacts::default() },
        }
    }
}
