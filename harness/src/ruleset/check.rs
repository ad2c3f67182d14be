//! What a path pattern names that does not exist: every hook a `[[probe.path]]` entry names
//! (`exact`, `includes`, `last`) or matches (`never`) judged against a [`Model`] of the netns's
//! rulesets. A `never` pattern that matches no hook the netns can report passes whatever the
//! packet met; an `exact`/`includes`/`last` hook that does not exist fails with a confusing
//! diff. Both are reported as what is missing, with what is there.
//!
//! The same checker runs when a file loads (a model built from the scenario's own rulesets,
//! [`super::scenario`]) and after the steps ran (one read from the live netns, [`super::live`]).

use super::{Chain, Ruleset};
use crate::observe::trace::{Hook, RuleKind};
use crate::scenario::{HookPattern, PathExpect, PathHook, glob};

/// Everything a netns's rulesets let its trace report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// The netns's name as the scenario writes it, for messages.
    pub netns: String,
    /// Its x_tables and nf_tables rulesets, per family (a table name may be in several).
    pub rulesets: Vec<Ruleset>,
    /// The ebtables `(table, chain)`s netpath traces there (`eb:nat:PREROUTING`).
    pub eb: Vec<(String, String)>,
    /// Tables the model does not know the contents of: a pattern that may name one is not judged.
    pub unread: Vec<String>,
    /// The model does not know the netns's rulesets at all: nothing is judged.
    pub opaque: bool,
}

/// One hook the netns can report, and its chain.
struct Candidate<'a> {
    hook: Hook,
    chain: &'a Chain,
}

impl Model {
    fn chains(&self) -> impl Iterator<Item = (&str, &Chain)> {
        self.rulesets
            .iter()
            .flat_map(|r| r.tables.iter())
            .flat_map(|t| t.chains.iter().map(move |c| (t.name.as_str(), c)))
    }

    /// Every hook name the trace can give, as legacy TRACE names them (nf_tables events are
    /// named the same way): `rule:N` for each rule, `return:N` in a user chain (an explicit
    /// RETURN rule, or its end), `policy:N` of a base chain (N = rules + 1).
    fn candidates(&self) -> Vec<Candidate<'_>> {
        let mut out = vec![];
        for (table, c) in self.chains() {
            let n = c.rules.len() as u32;
            let hook = |kind, num| Hook::xt(table, &c.name, kind, num);
            out.extend((1..=n).map(|i| Candidate { hook: hook(RuleKind::Rule, i), chain: c }));
            match c.hook {
                Some(_) => out.push(Candidate { hook: hook(RuleKind::Policy, n + 1), chain: c }),
                None => out.extend((1..=n + 1).map(|i| Candidate { hook: hook(RuleKind::Return, i), chain: c })),
            }
        }
        out
    }

    fn unread_may_be(&self, table_glob: &str) -> bool {
        self.opaque || self.unread.iter().any(|t| glob(table_glob, t))
    }

    /// The names of the model's tables, each once, `eb:` ones included.
    fn table_names(&self) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        let xt = self.rulesets.iter().flat_map(|r| r.tables.iter().map(|t| t.name.clone()));
        let eb = self.eb.iter().map(|(t, _)| format!("eb:{t}"));
        for t in xt.chain(eb).chain(self.unread.iter().cloned()) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out.sort();
        out
    }

    /// Why `pattern` (a `never` entry) matches no hook of this netns, if it does not.
    pub fn pattern_problem(&self, pattern: &HookPattern) -> Option<String> {
        match pattern {
            HookPattern::Name(parts) => self.name_problem(&pattern.to_string(), parts),
            HookPattern::Type { kind, hook } => self.type_problem(pattern, kind, hook.as_deref()),
        }
    }

    /// Why `hook` (an `exact`, `includes` or `last` entry) names no hook of this netns.
    pub fn hook_problem(&self, hook: &PathHook) -> Option<String> {
        if let (Some(comment), Hook::Xt { table, chain, .. }) = (&hook.comment, &hook.hook) {
            return self.comment_problem(hook, table, chain, comment);
        }
        let text = hook.hook.to_string();
        let parts: Vec<String> = text.split(':').map(str::to_string).collect();
        self.name_problem(&hook.to_string(), &parts)
    }

    /// The `never` patterns of `entry` that match nothing: `(key, index, message)`. These are
    /// errors (at load, or after the steps): such a pattern passes whatever the packet met. A
    /// hook of `exact`, `includes` or `last` that names nothing cannot pass (no event matches
    /// it), and the negative twins rely on it failing on the kernel: [`Model::entry_problems`]
    /// says why, beside the run's failure.
    pub fn vacuous(&self, entry: &PathExpect) -> Vec<(&'static str, usize, String)> {
        self.entry_problems(entry).into_iter().filter(|(key, _, _)| *key == "never").collect()
    }

    /// What is wrong with the patterns of `entry`: `(key, index, message)`, the key being
    /// `exact`, `includes`, `never` or `last` (index 0 for `last`).
    pub fn entry_problems(&self, entry: &PathExpect) -> Vec<(&'static str, usize, String)> {
        let mut out = vec![];
        for (key, hooks) in [("exact", &entry.exact), ("includes", &entry.includes)] {
            for (k, h) in hooks.iter().flatten().enumerate() {
                out.extend(self.hook_problem(h).map(|m| (key, k, m)));
            }
        }
        for (k, p) in entry.never.iter().enumerate() {
            out.extend(self.pattern_problem(p).map(|m| ("never", k, m)));
        }
        if let Some(h) = &entry.last {
            out.extend(self.hook_problem(h).map(|m| ("last", 0, m)));
        }
        out
    }

    fn name_problem(&self, shown: &str, parts: &[String]) -> Option<String> {
        let netns = &self.netns;
        let first = parts.first()?;
        if self.unread_may_be(first) {
            return None;
        }
        let pattern = HookPattern::Name(parts.to_vec());
        if self.eb.iter().any(|(t, c)| pattern.matches(&Hook::eb(t, c))) {
            return None;
        }
        if first == "eb" {
            return Some(self.eb_problem(shown));
        }
        let cands = self.candidates();
        if cands.iter().any(|c| pattern.matches(&c.hook)) {
            return None;
        }
        // The first part that nothing matches says what is missing.
        let upto = |k: usize| {
            let p = HookPattern::Name(parts[..k].to_vec());
            cands.iter().filter(move |c| p.matches(&c.hook)).collect::<Vec<_>>()
        };
        let tables = self.table_names();
        if upto(1).is_empty() {
            let has =
                if tables.is_empty() { "no table at all".to_string() } else { format!("tables {}", tables.join(", ")) };
            let hint = if first == "nat" && self.chains().any(|(_, c)| c.kind.as_deref() == Some("nat")) {
                "; to mean any NAT chain write `type:nat`".to_string()
            } else {
                did_you_mean(first, &tables)
            };
            return Some(format!(
                "`{shown}` names table {first}, which netns {netns} does not have (it has {has}){hint}"
            ));
        }
        if parts.len() >= 2 && upto(2).is_empty() {
            let mut names: Vec<String> = vec![];
            for (_, c) in self.chains().filter(|(t, _)| glob(first, t)) {
                if !names.contains(&c.name) {
                    names.push(c.name.clone());
                }
            }
            names.sort();
            let what = if parts[1].contains(['*', '?']) { "matches no chain" } else { "names no chain" };
            return Some(format!(
                "`{shown}` {what} of netns {netns} (its chains in table {first}: {}){}",
                names.join(", "),
                did_you_mean(&parts[1], &names)
            ));
        }
        let chains: Vec<&Chain> = {
            let mut seen: Vec<&Chain> = vec![];
            for c in upto(2) {
                if !seen.iter().any(|s| std::ptr::eq(*s, c.chain)) {
                    seen.push(c.chain);
                }
            }
            seen
        };
        let describe = |c: &Chain| {
            let n = c.rules.len();
            let rules = format!("{n} rule{}", if n == 1 { "" } else { "s" });
            match (&c.hook, &c.policy) {
                (Some(_), Some(p)) => format!(
                    "chain {} of table {first} in netns {netns} has {rules} and policy {p} (policy:{})",
                    c.name,
                    n + 1
                ),
                (Some(_), None) => format!(
                    "chain {} of table {first} in netns {netns} has {rules}; its policy is policy:{}",
                    c.name,
                    n + 1
                ),
                (None, _) => format!(
                    "chain {} of table {first} in netns {netns} is a user chain with {rules} (no policy; its end is return:{})",
                    c.name,
                    n + 1
                ),
            }
        };
        let about = chains.iter().map(|c| describe(c)).collect::<Vec<_>>().join("; ");
        Some(format!("`{shown}`: {about}"))
    }

    fn eb_problem(&self, shown: &str) -> String {
        let netns = &self.netns;
        if self.eb.is_empty() {
            return format!(
                "`{shown}` names an ebtables chain, but netpath traces none in netns {netns} (it traces ebtables where a traced netns has a bridge)"
            );
        }
        let have: Vec<String> = self.eb.iter().map(|(t, c)| format!("eb:{t}:{c}")).collect();
        format!("`{shown}` matches no ebtables chain netpath traces in netns {netns} (it traces {})", have.join(", "))
    }

    fn type_problem(&self, pattern: &HookPattern, kind: &str, hook: Option<&str>) -> Option<String> {
        if self.opaque || !self.unread.is_empty() {
            return None;
        }
        let of = |want: &str, have: &Option<String>| have.as_deref().is_some_and(|h| glob(want, h));
        let fits = |c: &Chain| of(kind, &c.kind) && hook.is_none_or(|h| of(h, &c.hook));
        if self.chains().any(|(_, c)| fits(c)) {
            return None;
        }
        let mut types: Vec<String> = vec![];
        for (t, c) in self.chains() {
            let (Some(k), Some(h)) = (&c.kind, &c.hook) else { continue };
            let s = format!("{t}:{} type {k} hook {h}", c.name);
            if !types.contains(&s) {
                types.push(s);
            }
        }
        types.sort();
        let have = if types.is_empty() {
            "no base chain".to_string()
        } else {
            format!("its base chains: {}", types.join(", "))
        };
        Some(format!("`{pattern}` matches no chain of netns {} ({have})", self.netns))
    }

    fn comment_problem(&self, hook: &PathHook, table: &str, chain: &str, comment: &str) -> Option<String> {
        if self.unread_may_be(table) {
            return None;
        }
        let parts = [table.to_string(), chain.to_string()];
        let chains: Vec<&Chain> =
            self.chains().filter(|(t, c)| *t == table && c.name == chain).map(|(_, c)| c).collect();
        if chains.is_empty() {
            return self.name_problem(&hook.to_string(), &parts);
        }
        if chains.iter().flat_map(|c| &c.rules).any(|r| r.comment.as_deref() == Some(comment)) {
            return None;
        }
        let mut comments: Vec<String> = vec![];
        for r in chains.iter().flat_map(|c| &c.rules) {
            if let Some(c) = &r.comment
                && !comments.contains(c)
            {
                comments.push(c.clone());
            }
        }
        let there = if comments.is_empty() {
            "no rule there has a comment".to_string()
        } else {
            format!("comments there: {}", comments.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", "))
        };
        Some(format!(
            "`{hook}`: no rule of {table}:{chain} in netns {} has that comment ({there}){}",
            self.netns,
            did_you_mean(comment, &comments)
        ))
    }
}

/// The item of a pattern in a scenario: `probe[0].path[1].never[2]`, `probe[0].path[1].last`.
pub fn pattern_item(probe: usize, entry: usize, key: &str, index: usize) -> String {
    match key {
        "last" => format!("probe[{probe}].path[{entry}].last"),
        _ => format!("probe[{probe}].path[{entry}].{key}[{index}]"),
    }
}

/// `; did you mean X?` where a name differs from `want` by case or at most two edits.
fn did_you_mean(want: &str, have: &[String]) -> String {
    if want.contains(['*', '?']) {
        return String::new();
    }
    let near = have
        .iter()
        .filter(|h| h.as_str() != want)
        .map(|h| (if h.eq_ignore_ascii_case(want) { 0 } else { edits(want, h) }, h))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d);
    near.map(|(_, h)| format!("; did you mean {h}?")).unwrap_or_default()
}

/// The Levenshtein distance between two short names.
fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::iptables;

    const SAVE: &str = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:USER - [0:0]\n\
        -A INPUT -p tcp --dport 22 -m comment --comment \"allow-ssh\" -j ACCEPT\n-A INPUT -i lo -j ACCEPT\n\
        -A INPUT -p icmp -j ACCEPT\n-A INPUT -j USER\n-A USER -j RETURN\nCOMMIT\n";

    const NFT: &str = "table inet kube-proxy {\n chain services { ip daddr 10.0.0.1 jump endpoint-abc }\n\
        chain endpoint-abc { dnat to 10.1.0.2 }\n chain nat-postrouting { type nat hook postrouting priority 100; masquerade }\n}\n";

    fn model() -> Model {
        let mut rulesets = vec![iptables::parse(SAVE, "ip")];
        rulesets.extend(crate::ruleset::nft::parse(NFT).rulesets);
        Model { netns: "fw".into(), rulesets, eb: vec![("nat".into(), "PREROUTING".into())], ..Model::default() }
    }

    fn never(p: &str) -> Option<String> {
        model().pattern_problem(&p.parse().unwrap())
    }

    fn hook(h: &str) -> Option<String> {
        model().hook_problem(&h.parse().unwrap())
    }

    #[test]
    fn patterns_that_match_something_pass() {
        for p in [
            "filter",
            "filter:INPUT",
            "filter:INPUT:rule:4",
            "filter:INPUT:policy:5",
            "filter:USER:return:2",
            "kube-proxy:endpoint-*",
            "*:services",
            "type:nat",
            "type:nat:hook:postrouting",
            "type:filter:hook:input",
            "eb:nat",
            "eb:nat:PREROUTING",
        ] {
            assert_eq!(never(p), None, "{p}");
        }
        for h in [
            "filter:INPUT:rule:1 accept",
            "filter:INPUT:policy:5 drop",
            r#"filter:INPUT:rule:"allow-ssh""#,
            "eb:nat:PREROUTING",
        ] {
            assert_eq!(hook(h), None, "{h}");
        }
    }

    #[test]
    fn patterns_that_match_nothing_say_what_is_there() {
        let m = never("kube-proxy:endpoint-x*").unwrap();
        assert_eq!(
            m,
            "`kube-proxy:endpoint-x*` matches no chain of netns fw (its chains in table kube-proxy: endpoint-abc, nat-postrouting, services)"
        );
        let m = never("nat").unwrap();
        assert!(
            m.starts_with(
                "`nat` names table nat, which netns fw does not have (it has tables eb:nat, filter, kube-proxy)"
            ),
            "{m}"
        );
        assert!(m.ends_with("write `type:nat`"), "{m}");
        assert!(never("fliter").unwrap().ends_with("did you mean filter?"));
        let m = hook("filter:INPUT:rule:7").unwrap();
        assert_eq!(
            m,
            "`filter:INPUT:rule:7`: chain INPUT of table filter in netns fw has 4 rules and policy drop (policy:5)"
        );
        // What was decided is the run's to judge: a verdict the policy cannot give is no
        // missing name (the twin that flips the policy fails on the kernel's verdict).
        assert_eq!(hook("filter:INPUT:policy:5 accept"), None);
        assert!(hook("filter:USER:policy:2").unwrap().contains("is a user chain with 1 rule"));
        let m = hook(r#"filter:INPUT:rule:"allow-sh""#).unwrap();
        assert_eq!(
            m,
            "`filter:INPUT:rule:\"allow-sh\"`: no rule of filter:INPUT in netns fw has that comment (comments there: \"allow-ssh\"); did you mean allow-ssh?"
        );
        assert!(hook(r#"filter:INPTU:rule:"x""#).unwrap().contains("did you mean INPUT?"));
        assert!(
            never("type:route").unwrap().starts_with("`type:route` matches no chain of netns fw (its base chains: ")
        );
        assert!(never("type:nat:hook:prerouting").is_some());
        assert!(never("eb:filter").unwrap().contains("it traces eb:nat:PREROUTING"));
        let bare = Model { netns: "c".into(), ..Model::default() };
        assert!(bare.pattern_problem(&"eb:nat".parse().unwrap()).unwrap().contains("traces none in netns c"));
        assert!(bare.pattern_problem(&"nat".parse().unwrap()).unwrap().contains("it has no table at all"));
    }

    #[test]
    fn what_the_model_does_not_know_is_not_judged() {
        let m = Model { unread: vec!["kube-proxy".into()], ..model() };
        assert_eq!(m.pattern_problem(&"kube-proxy:nothing".parse().unwrap()), None);
        assert_eq!(m.pattern_problem(&"type:route".parse().unwrap()), None);
        assert!(m.pattern_problem(&"nat".parse().unwrap()).is_some());
        let m = Model { opaque: true, ..model() };
        assert_eq!(m.pattern_problem(&"nat".parse().unwrap()), None);
    }
}
