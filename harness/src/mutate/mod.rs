//! Mutation testing for rulesets: change a scenario's rulesets and sysctls a little, one change
//! per mutant, run its probes against each mutant, and count the changes its expectations
//! notice. A change no expectation notices is a gap in the scenario's tests; the report names
//! the rule and the probes whose packets met it.
//!
//! Mutants come from the texts the scenario loads (iptables/ip6tables/ebtables save text, a
//! native nft ruleset) and from its sysctls; rules the scenario's steps write are the user's
//! program's, and are not mutated. Each operator is one a real datapath breaks by: a rule
//! deleted (a jump to a user chain with it), a verdict flipped, a built-in chain's policy
//! flipped, a match negated or dropped, a NAT target's address or port changed, two adjacent
//! rules swapped, a 0/1 sysctl flipped.
//!
//! Before any mutant runs, the unmutated scenario runs once per backend; its trace says which
//! rules and chains the probes' packets met. A mutant of a rule no probe packet met cannot change
//! what any probe observes (deleting, flipping or retargeting a rule acts only on packets that
//! match it): it is *unexercised*, reported as "no probe exercises" the rule, and not run. A
//! mutant the scenario marks `# mutate: equivalent — WHY` (a comment line above the rule, or
//! `# mutate: equivalent(OPERATOR) — WHY` for one operator) is reported with that reason and not
//! run either.
//!
//! ```
//! use std::path::Path;
//!
//! use netpath::Scenario;
//! use netpath::mutate::{Operator, mutants};
//!
//! let sc = Scenario::from_toml(
//!     r#"
//! name = "fw"
//! [[netns]]
//! name = "router"
//! sysctls = { "net.ipv4.ip_forward" = "1" }
//! iptables = """
//! *filter
//! :FORWARD DROP [0:0]
//! -A FORWARD -i lan -j ACCEPT
//! COMMIT
//! """
//! [[netns]]
//! name = "lan"
//! [[veth]]
//! a = { netns = "lan", name = "eth0", addresses = ["10.0.0.2/24"] }
//! b = { netns = "router", name = "lan", addresses = ["10.0.0.1/24"] }
//! [[probe]]
//! name = "lan-to-router"
//! from = "lan"
//! to = "10.0.0.1"
//! "#,
//!     Path::new("fw.toml"),
//! )?;
//! let ms = mutants(&sc);
//! let ops: Vec<Operator> = ms.iter().map(|m| m.operator).collect();
//! assert_eq!(
//!     ops,
//!     [Operator::FlipPolicy, Operator::DeleteRule, Operator::FlipVerdict, Operator::NegateMatch, Operator::Sysctl]
//! );
//! assert_eq!(ms[2].id, "router/iptables:3:flip-verdict");
//! assert_eq!(ms[2].after.as_deref(), Some("-A FORWARD -i lan -j DROP"));
//! # Ok::<(), netpath::Error>(())
//! ```

mod iptables;
mod nft;
mod report;
mod run;
mod sysctl;

pub use report::{Joined, Report, ScenarioScore, Tally, Unmutated, join};
pub use run::{MutantResult, Settings, Status, mutate_scenario, run_all};

use std::net::IpAddr;

use serde::Serialize;

use crate::firewall::Family;
use crate::observe::trace::event::{Hook, RuleKind, TraceEvent};
use crate::scenario::Scenario;

/// What a mutant changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operator {
    /// A rule removed (a jump to a user chain with it).
    DeleteRule,
    /// A terminal verdict flipped: ACCEPT ↔ DROP, REJECT → DROP.
    FlipVerdict,
    /// A built-in (base) filter chain's policy flipped: ACCEPT ↔ DROP.
    FlipPolicy,
    /// One match of a rule negated, or its negation removed (`-i docker0` → `! -i docker0`).
    NegateMatch,
    /// One match of a rule removed (`--ctstate RELATED,ESTABLISHED`, `--dport 80`).
    DropMatch,
    /// A NAT target's address or port changed.
    NatTarget,
    /// A rule and the next one of its chain swapped.
    SwapRules,
    /// A sysctl set to 0 or 1 flipped (`net.ipv4.ip_forward` 1 → 0).
    Sysctl,
}

impl Operator {
    /// The name ids and annotations use (`flip-verdict`).
    pub fn name(self) -> &'static str {
        match self {
            Operator::DeleteRule => "delete-rule",
            Operator::FlipVerdict => "flip-verdict",
            Operator::FlipPolicy => "flip-policy",
            Operator::NegateMatch => "negate-match",
            Operator::DropMatch => "drop-match",
            Operator::NatTarget => "nat-target",
            Operator::SwapRules => "swap-rules",
            Operator::Sysctl => "sysctl",
        }
    }
}

/// Which ruleset text of a netns a mutant edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    /// `iptables` (IPv4 iptables-save text).
    Iptables,
    /// `ip6tables`.
    Ip6tables,
    /// `ebtables`.
    Ebtables,
    /// `nft` (a native nftables ruleset).
    Nft,
}

impl Field {
    /// The scenario key.
    pub fn name(self) -> &'static str {
        match self {
            Field::Iptables => "iptables",
            Field::Ip6tables => "ip6tables",
            Field::Ebtables => "ebtables",
            Field::Nft => "nft",
        }
    }
}

/// A chain of a netns's ruleset, and the families of the packets it sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainAt {
    /// The scenario's name of the netns.
    pub netns: String,
    /// The families whose packets it sees (an `inet` table: both; ebtables: none said).
    pub families: Vec<Family>,
    /// The table, as the trace names it (`filter`, a native nft table's own name).
    pub table: String,
    /// The chain.
    pub chain: String,
}

impl ChainAt {
    fn holds(&self, ev: &TraceEvent, table: &str, chain: &str) -> bool {
        let family = ev.packet.src.or(ev.packet.dst).map(|a: IpAddr| Family::of(a));
        ev.netns == self.netns
            && table == self.table
            && chain == self.chain
            && (self.families.is_empty() || family.is_none_or(|f| self.families.contains(&f)))
    }
}

/// What in the datapath a mutant acts on, to tell from the unmutated run's trace whether any
/// probe packet could notice it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Target {
    /// Rules of a chain, by number (1-based, as the trace numbers them): met when a packet
    /// matched one of them (a deleted, flipped or retargeted rule acts only on those).
    Rules {
        /// Their chain.
        at: ChainAt,
        /// Their numbers in it.
        nums: Vec<u32>,
    },
    /// Every packet that went through a chain (a negated match can catch packets the rule did
    /// not match before).
    Chain(ChainAt),
    /// Packets that met a built-in chain's policy.
    Policy(ChainAt),
    /// An ebtables chain: its trace names chains, not rules.
    EbChain(ChainAt),
    /// A sysctl: anything may notice.
    Sysctl {
        /// The scenario's name of the netns.
        netns: String,
        /// The key.
        key: String,
    },
}

impl Target {
    /// Whether the trace event `ev` shows a packet meeting what this targets.
    pub fn met_by(&self, ev: &TraceEvent) -> bool {
        match (self, &ev.hook) {
            (Target::Rules { at, nums }, Hook::Xt { table, chain, kind, num }) => {
                *kind == RuleKind::Rule && nums.contains(num) && at.holds(ev, table, chain)
            }
            (Target::Chain(at), Hook::Xt { table, chain, .. }) => at.holds(ev, table, chain),
            (Target::Policy(at), Hook::Xt { table, chain, kind, .. }) => {
                *kind == RuleKind::Policy && at.holds(ev, table, chain)
            }
            (Target::EbChain(at), Hook::Eb { table, chain }) => at.holds(ev, table, chain),
            _ => false,
        }
    }

    /// Whether only the trace can tell (a sysctl acts everywhere: always run).
    pub fn traceable(&self) -> bool {
        !matches!(self, Target::Sysctl { .. })
    }

    /// How a person names it: `filter:FORWARD rule 3 in router`.
    pub fn describe(&self) -> String {
        match self {
            Target::Rules { at, nums } => {
                let n: Vec<String> = nums.iter().map(u32::to_string).collect();
                let what = if nums.len() == 1 { "rule" } else { "rules" };
                format!("{}:{} {what} {} in {}", at.table, at.chain, n.join(" and "), at.netns)
            }
            Target::Chain(at) => format!("chain {}:{} in {}", at.table, at.chain, at.netns),
            Target::Policy(at) => format!("the policy of {}:{} in {}", at.table, at.chain, at.netns),
            Target::EbChain(at) => format!("chain eb:{}:{} in {}", at.table, at.chain, at.netns),
            Target::Sysctl { netns, key } => format!("sysctl {key} in {netns}"),
        }
    }
}

/// One change to a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Mutant {
    /// Stable while the scenario file does not change: `NETNS/FIELD:LINE:OPERATOR`, with the
    /// match or part where one line gives several of an operator (`negate-match(-i)`);
    /// `NETNS/sysctl:KEY`.
    pub id: String,
    /// What it changes.
    pub operator: Operator,
    /// `FILE:LINE` of the changed line (for a swap, the first of the two).
    pub place: String,
    /// The line before the change.
    pub before: String,
    /// The line after it; `None` for a deleted rule.
    pub after: Option<String>,
    /// What in the datapath it acts on.
    pub target: Target,
    /// The scenario's own reason why no probe can notice it (`# mutate: equivalent — WHY`).
    pub equivalent: Option<String>,
    #[serde(skip)]
    edit: Edit,
}

/// The mutated scenario's difference from the original.
#[derive(Debug, Clone)]
enum Edit {
    /// The whole new text of one ruleset field of a netns.
    Ruleset { netns: usize, field: Field, text: String },
    /// One sysctl's new value.
    Sysctl { netns: usize, key: String, value: String },
}

impl Mutant {
    /// One line: `FILE:LINE: flip-verdict: `-A FORWARD -i lan -j ACCEPT` → `... -j DROP``.
    pub fn describe(&self) -> String {
        match &self.after {
            Some(after) => format!("{}: {}: `{}` → `{after}`", self.place, self.operator.name(), self.before),
            None => format!("{}: {}: `{}`", self.place, self.operator.name(), self.before),
        }
    }

    /// The scenario with this change made.
    pub fn apply(&self, sc: &Scenario) -> Scenario {
        let mut out = sc.clone();
        match &self.edit {
            Edit::Ruleset { netns, field, text } => {
                let n = &mut out.netns[*netns];
                let slot = match field {
                    Field::Iptables => &mut n.iptables,
                    Field::Ip6tables => &mut n.ip6tables,
                    Field::Ebtables => &mut n.ebtables,
                    Field::Nft => &mut n.nft,
                };
                *slot = Some(text.clone());
            }
            Edit::Sysctl { netns, key, value } => {
                out.netns[*netns].sysctls.insert(key.clone(), value.clone());
            }
        }
        out
    }

    /// Whether it changes a native nft ruleset (run only under the nft backend).
    pub fn native_nft(&self) -> bool {
        matches!(self.edit, Edit::Ruleset { field: Field::Nft, .. })
    }
}

/// A ruleset line's change, before the whole text and its place are known.
struct LineEdit {
    operator: Operator,
    /// 1-based line in the ruleset text.
    line: usize,
    before: String,
    after: Option<String>,
    /// For a swap: the other line (1-based), which takes `before`.
    swap_with: Option<usize>,
    /// Tells apart mutants of one operator on one line (`-i`, `address`), in the id.
    tag: Option<String>,
    target: Target,
}

impl LineEdit {
    /// Line `line`, `before`, written as `after` instead.
    fn changed(
        operator: Operator,
        line: usize,
        before: &str,
        after: String,
        tag: Option<&str>,
        target: Target,
    ) -> Self {
        LineEdit {
            operator,
            line,
            before: before.to_string(),
            after: Some(after),
            swap_with: None,
            tag: tag.map(str::to_string),
            target,
        }
    }

    /// Rule line `line`, `before`, deleted.
    fn deleted(line: usize, before: &str, target: Target) -> Self {
        LineEdit {
            operator: Operator::DeleteRule,
            line,
            before: before.to_string(),
            after: None,
            swap_with: None,
            tag: None,
            target,
        }
    }

    /// Rule line `line`, `before`, swapped with line `other`, which reads `after`.
    fn swapped(line: usize, before: &str, other: usize, after: &str, target: Target) -> Self {
        LineEdit {
            operator: Operator::SwapRules,
            line,
            before: before.to_string(),
            after: Some(after.to_string()),
            swap_with: Some(other),
            tag: None,
            target,
        }
    }
}

/// Every mutant of the scenario, in file order per netns: rulesets (iptables, ip6tables,
/// ebtables, nft), then sysctls.
pub fn mutants(sc: &Scenario) -> Vec<Mutant> {
    let mut out = vec![];
    for (i, n) in sc.netns.iter().enumerate() {
        let texts = [
            (Field::Iptables, &n.iptables),
            (Field::Ip6tables, &n.ip6tables),
            (Field::Ebtables, &n.ebtables),
            (Field::Nft, &n.nft),
        ];
        for (field, text) in texts {
            let Some(text) = text else { continue };
            let edits = match field {
                Field::Iptables => iptables::mutants(text, &n.name, Family::V4),
                Field::Ip6tables => iptables::mutants(text, &n.name, Family::V6),
                Field::Ebtables => iptables::eb_mutants(text, &n.name),
                Field::Nft => nft::mutants(text, &n.name),
            };
            out.extend(located(sc, i, field, text, edits));
        }
        out.extend(sysctl::mutants(sc, i));
    }
    out
}

/// The edits of one ruleset text as mutants: their whole new text, place, id and annotation.
fn located(sc: &Scenario, netns: usize, field: Field, text: &str, edits: Vec<LineEdit>) -> Vec<Mutant> {
    let name = &sc.netns[netns].name;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    for e in edits {
        let mut new: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        match (&e.after, e.swap_with) {
            (_, Some(other)) => new.swap(e.line - 1, other - 1),
            (Some(after), None) => new[e.line - 1] = after.clone(),
            (None, None) => {
                new.remove(e.line - 1);
            }
        }
        let mut new_text = new.join("\n");
        if text.ends_with('\n') {
            new_text.push('\n');
        }
        let mut id = format!("{name}/{}:{}:{}", field.name(), e.line, e.operator.name());
        if let Some(tag) = &e.tag {
            id += &format!("({tag})");
        }
        out.push(Mutant {
            id,
            operator: e.operator,
            place: sc.source.at(name, field.name(), e.line),
            before: e.before,
            after: e.after,
            target: e.target,
            equivalent: annotation(&lines, e.line, e.operator, e.tag.as_deref()),
            edit: Edit::Ruleset { netns, field, text: new_text },
        });
    }
    out
}

/// The `# mutate: equivalent — WHY` comment lines right above ruleset line `line` (1-based), for
/// the mutant of operator `op` and tag `tag`: `equivalent(OPERATOR)` narrows the comment to one
/// operator, `equivalent(OPERATOR(TAG))` to one of its mutants (`negate-match(--dport)`).
fn annotation(lines: &[&str], line: usize, op: Operator, tag: Option<&str>) -> Option<String> {
    lines[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| equivalent(l, op, tag))
}

/// The reason a comment gives for the mutant being equivalent, if it is such a comment for it.
fn equivalent(comment: &str, op: Operator, tag: Option<&str>) -> Option<String> {
    let rest = comment.trim_start_matches('#').trim().strip_prefix("mutate:")?.trim();
    let rest = rest.strip_prefix("equivalent")?;
    let rest = match rest.strip_prefix('(') {
        Some(r) => {
            // The operator may hold a parenthesised tag: find the `)` that closes the first `(`.
            let mut depth = 1;
            let end = r.char_indices().find_map(|(i, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(i)
            })?;
            let which = r[..end].trim();
            let tagged = tag.map(|t| format!("{}({t})", op.name()));
            if which != op.name() && Some(which) != tagged.as_deref() {
                return None;
            }
            &r[end + 1..]
        }
        None => rest,
    };
    let why = rest.trim().trim_start_matches(['—', '-', ':']).trim();
    Some(if why.is_empty() { "marked equivalent, no reason given".to_string() } else { why.to_string() })
}

#[cfg(test)]
mod tests;
