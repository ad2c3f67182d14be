//! The rule index: nf_tables rule handles named as legacy iptables names rule positions, from
//! `nft -j list ruleset` (and `iptables-save` for the rule texts).

use std::collections::HashMap;

use super::wire::*;

/// Why a ruleset listing could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RuleIndexError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not an `nft -j list ruleset` document: {0}")]
    Format(&'static str),
}

/// One rule of the ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// 1-based position in its chain (the legacy iptables rule number).
    pub position: u32,
    pub handle: u64,
    /// The `expr` list summarised in nft-like syntax (best effort: `ip protocol icmp counter
    /// xt target "TRACE"`, `jump USER`...).
    pub summary: String,
    /// The rule's `comment`.
    pub comment: Option<String>,
    /// The iptables rule text (`-A FORWARD -p icmp -j USER`) when an iptables-save listing
    /// was merged with [`RuleIndex::with_iptables_save`].
    pub iptables: Option<String>,
    /// It rejects (nft `reject`, iptables-nft `-j REJECT`): the kernel reports its verdict as
    /// a drop.
    pub rejects: bool,
}

impl RuleInfo {
    /// The best text: the iptables rule, else the summary (with the comment if any).
    pub fn text(&self) -> String {
        if let Some(t) = &self.iptables {
            return t.clone();
        }
        match &self.comment {
            Some(c) if !self.summary.contains(c.as_str()) => {
                format!("{} comment \"{c}\"", self.summary)
            }
            _ => self.summary.clone(),
        }
    }
}

/// One chain of the ruleset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainInfo {
    /// Rule handles in chain order.
    pub handles: Vec<u64>,
    /// Hook of a base chain (`prerouting`, `forward`...); `None` for user chains.
    pub hook: Option<String>,
    /// Type of a base chain (`filter`, `nat`, `route`); `None` for user chains.
    pub kind: Option<String>,
    /// Policy of a base chain (`accept`, `drop`).
    pub policy: Option<String>,
}

type ChainKey = (u8, String, String);

/// Rule positions and texts of a ruleset, to name trace events like legacy iptables TRACE
/// (`filter:FORWARD:rule:1`, `filter:USER:return:2`, `raw:PREROUTING:policy:2`).
///
/// Built from `nft -j list ruleset`, which lists the rules of a chain in evaluation order.
/// Naming (see [`RuleIndex::name`]):
/// - an event with a rule handle (a rule matched) is `rule` + the rule's 1-based position,
///   whatever the verdict: `continue` (a non-terminal match: `-j TRACE`, counter, log, mark...),
///   `jump`/`goto` (the event is in the calling chain; the target chain's events follow),
///   `return` (explicit), `accept`, `drop`. Legacy TRACE also prints `rule:N` for each of these.
/// - a chain-end event ([`NfTraceMsg::is_chain_end`]) in a user chain is `return` + (rules + 1),
///   also for a chain without rules (`return:1`); in a base chain it is `None`, because the
///   `Policy` event that follows names that position.
/// - a `Policy` event is `policy` + (rules + 1).
///
/// Continuing in the caller after a return emits nothing, in nf_tables as in legacy. After a
/// `goto`, the target chain's end returns to the caller of the chain that did the goto (or
/// ends in the base chain's policy), which is also what the events show.
#[derive(Debug, Clone, Default)]
pub struct RuleIndex {
    rules: HashMap<(u8, String, String, u64), RuleInfo>,
    chains: HashMap<ChainKey, ChainInfo>,
}

impl RuleIndex {
    /// Reads the output of `nft -j list ruleset` (handles are always present in JSON output).
    pub fn from_nft_json(json: &str) -> Result<RuleIndex, RuleIndexError> {
        let v: serde_json::Value = serde_json::from_str(json)?;
        let items =
            v.get("nftables").and_then(|a| a.as_array()).ok_or(RuleIndexError::Format("no `nftables` array"))?;
        let mut idx = RuleIndex::default();
        for item in items {
            if let Some(c) = item.get("chain") {
                let Some(key) = chain_key(c) else { continue };
                let info = idx.chains.entry(key).or_default();
                info.hook = c.get("hook").and_then(|h| h.as_str()).map(str::to_string);
                info.kind = c.get("type").and_then(|h| h.as_str()).map(str::to_string);
                info.policy = c.get("policy").and_then(|h| h.as_str()).map(str::to_string);
            } else if let Some(r) = item.get("rule") {
                let Some(key) = chain_key(r) else { continue };
                let Some(handle) = r.get("handle").and_then(|h| h.as_u64()) else {
                    return Err(RuleIndexError::Format("rule without handle"));
                };
                let chain = idx.chains.entry(key.clone()).or_default();
                chain.handles.push(handle);
                let position = chain.handles.len() as u32;
                let summary = r
                    .get("expr")
                    .and_then(|e| e.as_array())
                    .map(|e| e.iter().map(summarize_stmt).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default();
                let comment = r.get("comment").and_then(|c| c.as_str()).map(str::to_string);
                let rejects = r.get("expr").and_then(|e| e.as_array()).is_some_and(|e| e.iter().any(is_reject));
                idx.rules.insert(
                    (key.0, key.1, key.2, handle),
                    RuleInfo { position, handle, summary, comment, iptables: None, rejects },
                );
            }
        }
        Ok(idx)
    }

    /// Merges an `iptables-nft-save` listing (family `ip`): the N-th `-A C` line of `*T` becomes
    /// the text of rule N of chain C in table T. Only right when the chain holds nothing but
    /// iptables-nft rules (the usual case for iptables-nft tables).
    pub fn with_iptables_save(self, text: &str) -> RuleIndex {
        self.with_iptables_save_family(family::IPV4, text)
    }

    /// [`with_iptables_save`](Self::with_iptables_save) for another family
    /// (`ip6tables-nft-save`: [`family::IPV6`]; `arptables`: [`family::ARP`]...).
    pub fn with_iptables_save_family(mut self, family: u8, text: &str) -> RuleIndex {
        let mut table = String::new();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(t) = line.strip_prefix('*') {
                table = t.trim().to_string();
                counts.clear();
                continue;
            }
            // `iptables-save -c` puts `[packets:bytes] ` before the rule.
            let rule = match line.strip_prefix('[') {
                Some(rest) => rest.split_once("] ").map_or(line, |(_, r)| r.trim_start()),
                None => line,
            };
            let Some(rest) = rule.strip_prefix("-A ") else {
                continue;
            };
            let chain = rest.split_whitespace().next().unwrap_or_default().to_string();
            let n = counts.entry(chain.clone()).or_insert(0);
            *n += 1;
            let key = (family, table.clone(), chain);
            if let Some(handle) = self.chains.get(&key).and_then(|c| c.handles.get(*n - 1)) {
                let handle = *handle;
                if let Some(info) = self.rules.get_mut(&(key.0, key.1, key.2, handle)) {
                    info.iptables = Some(rule.to_string());
                }
            }
        }
        self
    }

    /// The rule with this handle.
    pub fn rule(&self, family: u8, table: &str, chain: &str, handle: u64) -> Option<&RuleInfo> {
        self.rules.get(&(family, table.to_string(), chain.to_string(), handle))
    }

    /// The rule a `Rule` event names.
    pub fn rule_of(&self, msg: &NfTraceMsg) -> Option<&RuleInfo> {
        self.rule(msg.family, &msg.table, &msg.chain, msg.rule_handle?)
    }

    /// The chain, if the listing has it (chains without rules included).
    pub fn chain(&self, family: u8, table: &str, chain: &str) -> Option<&ChainInfo> {
        self.chains.get(&(family, table.to_string(), chain.to_string()))
    }

    /// The number of rules in a chain.
    pub fn chain_len(&self, family: u8, table: &str, chain: &str) -> Option<u32> {
        self.chain(family, table, chain).map(|c| c.handles.len() as u32)
    }

    /// Whether the ruleset has a chain of `family`.
    pub fn has_family(&self, family: u8) -> bool {
        self.chains.keys().any(|(f, _, _)| *f == family)
    }

    /// True when the listing has this chain as a base chain (it has a hook).
    pub fn is_base_chain(&self, family: u8, table: &str, chain: &str) -> bool {
        self.chain(family, table, chain).is_some_and(|c| c.hook.is_some())
    }

    /// The listing as [`crate::ruleset::Ruleset`]s, one per family, tables and chains sorted by
    /// name (the ruleset model that [`crate::ruleset::check`] judges patterns against).
    pub fn rulesets(&self) -> Vec<crate::ruleset::Ruleset> {
        use crate::ruleset::{Chain, Rule, Ruleset, Table};
        let mut keys: Vec<&ChainKey> = self.chains.keys().collect();
        keys.sort();
        let mut out: Vec<Ruleset> = vec![];
        for key in keys {
            let (family, table, name) = key;
            let info = &self.chains[key];
            let fam = family_name(*family).map_or_else(|| family.to_string(), str::to_string);
            if out.last().is_none_or(|r| r.family != fam) {
                out.push(Ruleset { family: fam, tables: vec![] });
            }
            let set = out.last_mut().expect("pushed above");
            if set.tables.last().is_none_or(|t| &t.name != table) {
                set.tables.push(Table { name: table.clone(), chains: vec![] });
            }
            let rules = info
                .handles
                .iter()
                .filter_map(|h| self.rules.get(&(*family, table.clone(), name.clone(), *h)))
                .map(|r| Rule { text: r.text(), comment: r.comment.clone(), verdict: None })
                .collect();
            set.tables.last_mut().expect("pushed above").chains.push(Chain {
                name: name.clone(),
                kind: info.kind.clone(),
                hook: info.hook.clone(),
                policy: info.policy.as_deref().and_then(crate::observe::trace::Verdict::of_policy),
                rules,
            });
        }
        out
    }

    /// The legacy-TRACE name of an event: (table, chain, `"rule"|"return"|"policy"`, number).
    /// `None` when the chain or rule is not in the index, for the chain-end event of a base
    /// chain (its `Policy` event follows), and for `Unspec`/`Other` events.
    pub fn name(&self, msg: &NfTraceMsg) -> Option<(String, String, &'static str, u32)> {
        let after_last = || self.chain_len(msg.family, &msg.table, &msg.chain).map(|n| n + 1);
        let (kind, num) = match msg.trace_type {
            TraceType::Rule | TraceType::Return if msg.rule_handle.is_some() => ("rule", self.rule_of(msg)?.position),
            TraceType::Rule | TraceType::Return if msg.is_chain_end() => {
                if self.is_base_chain(msg.family, &msg.table, &msg.chain) {
                    return None;
                }
                ("return", after_last()?)
            }
            TraceType::Policy => ("policy", after_last()?),
            _ => return None,
        };
        Some((msg.table.clone(), msg.chain.clone(), kind, num))
    }
}

/// Whether a statement rejects: nft's `reject`, or an x_tables `REJECT` target.
fn is_reject(stmt: &serde_json::Value) -> bool {
    stmt.get("reject").is_some()
        || stmt.get("xt").is_some_and(|x| {
            x.get("type").and_then(|t| t.as_str()) == Some("target")
                && x.get("name").and_then(|n| n.as_str()) == Some("REJECT")
        })
}

fn chain_key(v: &serde_json::Value) -> Option<ChainKey> {
    let family = family_from_name(v.get("family")?.as_str()?)?;
    let table = v.get("table")?.as_str()?.to_string();
    let chain = v.get("chain").or_else(|| v.get("name"))?.as_str()?.to_string();
    Some((family, table, chain))
}

/// nft-like text of one JSON statement (best effort; unknown shapes fall back to their key).
fn summarize_stmt(s: &serde_json::Value) -> String {
    use serde_json::Value;
    let Some(obj) = s.as_object() else {
        return summarize_expr(s);
    };
    let Some((key, val)) = obj.iter().next() else {
        return String::new();
    };
    match key.as_str() {
        "match" => {
            let left = val.get("left").map(summarize_expr).unwrap_or_default();
            let right = val.get("right").map(summarize_expr).unwrap_or_default();
            match val.get("op").and_then(Value::as_str) {
                Some("==") | Some("in") | None => format!("{left} {right}"),
                Some(op) => format!("{left} {op} {right}"),
            }
        }
        "accept" | "drop" | "continue" | "return" => key.clone(),
        "jump" | "goto" => {
            format!("{key} {}", val.get("target").and_then(Value::as_str).unwrap_or("?"))
        }
        "counter" => "counter".into(),
        "mangle" => {
            let k = val.get("key").map(summarize_expr).unwrap_or_default();
            let v = val.get("value").map(summarize_expr).unwrap_or_default();
            format!("{k} set {v}")
        }
        "xt" => format!(
            "xt {} \"{}\"",
            val.get("type").and_then(Value::as_str).unwrap_or("?"),
            val.get("name").and_then(Value::as_str).unwrap_or("?")
        ),
        "log" => match val.get("prefix").and_then(Value::as_str) {
            Some(p) => format!("log prefix \"{p}\""),
            None => "log".into(),
        },
        _ => key.clone(),
    }
}

fn summarize_expr(e: &serde_json::Value) -> String {
    use serde_json::Value;
    match e {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        Value::Array(a) => format!("{{ {} }}", a.iter().map(summarize_expr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => {
            let Some((key, val)) = o.iter().next() else {
                return String::new();
            };
            match key.as_str() {
                "payload" => {
                    let proto = val.get("protocol").and_then(Value::as_str);
                    let field = val.get("field").and_then(Value::as_str);
                    match (proto, field) {
                        (Some(p), Some(f)) => format!("{p} {f}"),
                        _ => format!(
                            "@{},{},{}",
                            val.get("base").and_then(Value::as_str).unwrap_or("?"),
                            val.get("offset").map(summarize_expr).unwrap_or_default(),
                            val.get("len").map(summarize_expr).unwrap_or_default()
                        ),
                    }
                }
                "meta" => format!("meta {}", val.get("key").and_then(Value::as_str).unwrap_or("?")),
                "ct" => format!("ct {}", val.get("key").and_then(Value::as_str).unwrap_or("?")),
                "set" => summarize_expr(val),
                "prefix" => format!(
                    "{}/{}",
                    val.get("addr").map(summarize_expr).unwrap_or_default(),
                    val.get("len").map(summarize_expr).unwrap_or_default()
                ),
                "range" => match val.as_array().map(Vec::as_slice) {
                    Some([a, b]) => format!("{}-{}", summarize_expr(a), summarize_expr(b)),
                    _ => "range".into(),
                },
                _ => key.clone(),
            }
        }
    }
}
