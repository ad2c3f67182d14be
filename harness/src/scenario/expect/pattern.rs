//! How path expectations name hooks: [`PathHook`] (`exact`, `includes`, `last`: one hook, with
//! the verdict it must have had) and [`HookPattern`] (`never`: a set of hooks, by name parts
//! with globs or by chain type).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::observe::trace::{Hook, TraceEvent, Verdict};

/// One hook of `exact`, `includes` or `last`: `filter:INPUT:policy:2 drop`. Without a verdict
/// it matches the hook whatever was decided there; with one, only where the trace shows that
/// verdict (an event whose verdict is unknown does not match).
///
/// A rule may be named by its comment instead of its position: `filter:INPUT:rule:"allow-ssh"`
/// is the rule of chain INPUT whose comment (`-m comment --comment`, nft `comment`) is
/// `allow-ssh`, wherever it sits, so a rule added above it does not break the entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathHook {
    /// The hook, as trace events name it; for a comment reference its rule number is 0 and
    /// means nothing.
    pub hook: Hook,
    /// The comment of the rule, for a reference by comment.
    pub comment: Option<String>,
    /// The verdict it must have had there, if the entry says.
    pub verdict: Option<Verdict>,
}

impl PathHook {
    /// Whether a reference by comment can carry `comment`: it has one and no `"`, which would
    /// end it.
    pub fn can_name(comment: &str) -> bool {
        !comment.is_empty() && !comment.contains('"')
    }

    /// Whether `event` is this hook (or a rule of its chain with its comment), with this verdict
    /// where one is given.
    pub fn matches(&self, event: &TraceEvent) -> bool {
        let hook = match (&self.comment, &self.hook, &event.hook) {
            (None, want, seen) => want == seen,
            (
                Some(comment),
                Hook::Xt { table, chain, .. },
                Hook::Xt { table: t, chain: c, kind: crate::observe::trace::RuleKind::Rule, .. },
            ) => {
                table == t
                    && chain == c
                    && event.rule.as_ref().and_then(|r| r.comment.as_deref()) == Some(comment.as_str())
            }
            _ => false,
        };
        hook && self.verdict.as_ref().is_none_or(|v| event.verdict.as_ref() == Some(v))
    }
}

impl From<Hook> for PathHook {
    fn from(hook: Hook) -> PathHook {
        PathHook { hook, comment: None, verdict: None }
    }
}

impl fmt::Display for PathHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.comment, &self.hook) {
            (Some(comment), Hook::Xt { table, chain, .. }) => write!(f, "{table}:{chain}:rule:\"{comment}\"")?,
            _ => write!(f, "{}", self.hook)?,
        }
        match &self.verdict {
            Some(v) => write!(f, " {v}"),
            None => Ok(()),
        }
    }
}

impl FromStr for PathHook {
    type Err = String;

    fn from_str(s: &str) -> Result<PathHook, String> {
        let s = s.trim();
        if let Some(at) = s.find(":rule:\"") {
            return comment_reference(s, &s[..at], &s[at + ":rule:\"".len()..]);
        }
        let (hook, verdict) = match s.split_once(char::is_whitespace) {
            Some((hook, verdict)) => (hook, Some(verdict.trim())),
            None => (s, None),
        };
        let hook: Hook = hook.parse().map_err(|e: crate::observe::trace::event::HookParseError| e.to_string())?;
        let verdict = verdict.map(|v| v.parse().map_err(|e| format!("`{s}`: {e}"))).transpose()?;
        Ok(PathHook { hook, comment: None, verdict })
    }
}

/// `table:chain:rule:"comment" [verdict]`, split at `:rule:"` into `table:chain` and the rest.
fn comment_reference(s: &str, table_chain: &str, rest: &str) -> Result<PathHook, String> {
    let err =
        |why: &str| format!("`{s}` is not a rule reference by comment: {why} (want `table:chain:rule:\"comment\"`)");
    let (table, chain) = match table_chain.split(':').collect::<Vec<_>>().as_slice() {
        [table, chain] if !table.is_empty() && !chain.is_empty() && *table != "eb" => {
            (table.to_string(), chain.to_string())
        }
        _ => return Err(err("it must start with a table and a chain")),
    };
    let (comment, after) = rest.split_once('"').ok_or_else(|| err("the comment has no closing quote"))?;
    if comment.is_empty() {
        return Err(err("the comment is empty"));
    }
    let verdict = match after.trim() {
        "" => None,
        v if after.starts_with(char::is_whitespace) => Some(v.parse().map_err(|e| format!("`{s}`: {e}"))?),
        _ => return Err(err("a verdict after the comment needs a space before it")),
    };
    let hook = Hook::xt(&table, &chain, crate::observe::trace::RuleKind::Rule, 0);
    Ok(PathHook { hook, comment: Some(comment.to_string()), verdict })
}

impl Serialize for PathHook {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PathHook {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PathHook, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A pattern over hooks.
///
/// - By name: up to four parts of the hook's name, from the left: `nat` (any chain of table
///   nat), `nat:POSTROUTING`, `eb:nat`, `filter:FORWARD:rule:3`. A part may hold globs: `*`
///   (any run of characters) and `?` (any one character): `kube-proxy:endpoint-*`,
///   `nat:KUBE-SEP-*`; a whole-part `*` is any one part (`*:POSTROUTING`).
/// - By chain type: `type:nat`, `type:nat:hook:postrouting`: any event in a chain of that type
///   (and base-chain hook). Every chain of iptables' nat table is of type nat; a native nft
///   chain has its own type, a user chain that of the base chain that jumped to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookPattern {
    /// Name parts, each a glob.
    Name(Vec<String>),
    /// A chain type and optionally a hook, each a glob.
    Type {
        /// `nat`, `filter`, `route`.
        kind: String,
        /// `prerouting`, `postrouting`...
        hook: Option<String>,
    },
}

impl HookPattern {
    /// Whether a hook matches, by its name only (a `type:` pattern knows iptables' nat table).
    pub fn matches(&self, hook: &Hook) -> bool {
        match self {
            HookPattern::Name(parts) => {
                let text = hook.to_string();
                let have: Vec<&str> = text.split(':').collect();
                parts.len() <= have.len() && parts.iter().zip(have).all(|(p, h)| glob(p, h))
            }
            HookPattern::Type { kind, hook: None } => {
                matches!(hook, Hook::Xt { table, .. } if table == "nat" && glob(kind, "nat"))
            }
            HookPattern::Type { .. } => false,
        }
    }

    /// Whether an event matches: by name, or by the type and hook of its chain.
    pub fn matches_event(&self, event: &TraceEvent) -> bool {
        let HookPattern::Type { kind, hook } = self else { return self.matches(&event.hook) };
        let Some(chain) = &event.chain else { return self.matches(&event.hook) };
        let of = |want: &str, have: &Option<String>| have.as_deref().is_some_and(|h| glob(want, h));
        of(kind, &chain.kind) && hook.as_deref().is_none_or(|h| of(h, &chain.hook))
    }

    /// The table part of a name pattern, when it is a plain name (no glob).
    pub fn table(&self) -> Option<&str> {
        match self {
            HookPattern::Name(parts) => parts.first().map(String::as_str).filter(|t| !t.contains(['*', '?'])),
            HookPattern::Type { .. } => None,
        }
    }
}

/// Whether `text` matches `pattern`, where `*` is any run of characters and `?` any one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // The classic two-pointer match with backtracking to the last `*`: linear in practice.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

impl FromStr for HookPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<String> = s.split(':').map(str::to_string).collect();
        let bad = |why: &str| {
            format!(
                "`{s}` is not a hook pattern: {why} (want e.g. nat, nat:POSTROUTING, eb:nat:OUTPUT, nat:KUBE-SEP-*, type:nat, type:nat:hook:postrouting)"
            )
        };
        if parts.iter().any(String::is_empty) {
            return Err(bad("an empty part"));
        }
        if parts[0] == "type" {
            return match parts.as_slice() {
                [_, kind] => Ok(HookPattern::Type { kind: kind.clone(), hook: None }),
                [_, kind, h, hook] if h == "hook" => {
                    Ok(HookPattern::Type { kind: kind.clone(), hook: Some(hook.clone()) })
                }
                _ => Err(bad("a chain-type pattern is `type:TYPE` or `type:TYPE:hook:HOOK`")),
            };
        }
        if parts.len() > 4 {
            return Err(bad("more than four parts"));
        }
        Ok(HookPattern::Name(parts))
    }
}

impl fmt::Display for HookPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookPattern::Name(parts) => f.write_str(&parts.join(":")),
            HookPattern::Type { kind, hook: None } => write!(f, "type:{kind}"),
            HookPattern::Type { kind, hook: Some(h) } => write!(f, "type:{kind}:hook:{h}"),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::trace::ChainFacts;

    fn event(hook: &str, kind: Option<&str>, at: Option<&str>, verdict: Option<&str>) -> TraceEvent {
        let line = "IN=a OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=84 TTL=64 ID=1 PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1";
        let xt = if hook.starts_with("eb:") { "nat:PREROUTING:policy:1" } else { hook };
        let mut e = crate::observe::trace::text::parse_line(&format!("TRACE: {xt} {line}")).unwrap();
        e.hook = hook.parse().unwrap();
        e.chain =
            kind.map(|k| ChainFacts { family: "inet".into(), kind: Some(k.into()), hook: at.map(str::to_string) });
        e.verdict = verdict.map(|v| v.parse().unwrap());
        e
    }

    #[test]
    fn globs_match_inside_a_part() {
        assert!(glob("endpoint-*", "endpoint-ABC123"));
        assert!(glob("KUBE-SEP-?BC", "KUBE-SEP-ABC"));
        assert!(!glob("KUBE-SEP-?BC", "KUBE-SEP-AABC"));
        assert!(glob("*-SEP-*", "KUBE-SEP-X"));
        assert!(!glob("endpoint-*", "services"));
        assert!(glob("*", ""));
        let p: HookPattern = "kube-proxy:endpoint-*".parse().unwrap();
        assert!(p.matches(&Hook::xt(
            "kube-proxy",
            "endpoint-5OJB2KTY-ns1/svc/tcp/p80",
            crate::observe::trace::RuleKind::Rule,
            1
        )));
        assert!(!p.matches(&Hook::xt("kube-proxy", "services", crate::observe::trace::RuleKind::Rule, 1)));
        assert!(!p.matches(&Hook::xt("kube-proxyx", "endpoint-1", crate::observe::trace::RuleKind::Rule, 1)));
    }

    #[test]
    fn type_patterns_match_the_chain_type() {
        let nat: HookPattern = "type:nat".parse().unwrap();
        let post: HookPattern = "type:nat:hook:postrouting".parse().unwrap();
        let docker = event("docker-bridges:nat-POSTROUTING:rule:1", Some("nat"), Some("postrouting"), Some("accept"));
        assert!(nat.matches_event(&docker) && post.matches_event(&docker));
        let pre = event("docker-bridges:nat-PREROUTING:rule:1", Some("nat"), Some("prerouting"), None);
        assert!(nat.matches_event(&pre) && !post.matches_event(&pre));
        let filter = event("docker-bridges:filter-FORWARD:rule:1", Some("filter"), Some("forward"), None);
        assert!(!nat.matches_event(&filter));
        // Without chain facts (read from text), iptables' nat table is type nat.
        assert!(nat.matches_event(&event("nat:DOCKER:rule:1", None, None, None)));
        assert!(!nat.matches_event(&event("eb:nat:PREROUTING", None, None, None)));
        assert_eq!(post.to_string(), "type:nat:hook:postrouting");
        assert!("type:nat:postrouting".parse::<HookPattern>().unwrap_err().contains("type:TYPE:hook:HOOK"));
    }

    #[test]
    fn path_hooks_carry_a_verdict() {
        let h: PathHook = "filter:INPUT:policy:2 drop".parse().unwrap();
        assert_eq!(h.to_string(), "filter:INPUT:policy:2 drop");
        assert!(h.matches(&event("filter:INPUT:policy:2", None, None, Some("drop"))));
        assert!(!h.matches(&event("filter:INPUT:policy:2", None, None, Some("accept"))));
        assert!(!h.matches(&event("filter:INPUT:policy:2", None, None, None)), "an unknown verdict is not a drop");
        let any: PathHook = "filter:INPUT:policy:2".parse().unwrap();
        assert!(any.matches(&event("filter:INPUT:policy:2", None, None, Some("accept"))));
        let jump: PathHook = "nat:PREROUTING:rule:1  jump DOCKER".parse().unwrap();
        assert_eq!(jump.verdict, Some(Verdict::Jump("DOCKER".into())));
        assert!("filter:INPUT:policy:2 DROP".parse::<PathHook>().unwrap_err().contains("is not a verdict"));
        assert!("filter:INPUT:polcy:2 drop".parse::<PathHook>().unwrap_err().contains("is not a hook"));
    }

    #[test]
    fn rules_are_named_by_their_comment_wherever_they_sit() {
        let h: PathHook = r#"filter:INPUT:rule:"allow ssh" accept"#.parse().unwrap();
        assert_eq!(h.comment.as_deref(), Some("allow ssh"));
        assert_eq!(h.to_string(), r#"filter:INPUT:rule:"allow ssh" accept"#);
        let with = |hook: &str, comment: Option<&str>| {
            let mut e = event(hook, None, None, Some("accept"));
            e.rule = Some(crate::observe::trace::RuleText {
                text: "-A INPUT -p tcp".into(),
                comment: comment.map(str::to_string),
                comment_unique: true,
            });
            e
        };
        assert!(h.matches(&with("filter:INPUT:rule:1", Some("allow ssh"))));
        assert!(h.matches(&with("filter:INPUT:rule:7", Some("allow ssh"))), "any position");
        assert!(!h.matches(&with("filter:INPUT:rule:1", Some("allow web"))));
        assert!(!h.matches(&with("filter:INPUT:rule:1", None)));
        assert!(!h.matches(&with("filter:FORWARD:rule:1", Some("allow ssh"))), "another chain");
        assert!(!h.matches(&with("filter:INPUT:policy:2", Some("allow ssh"))), "a policy is no rule");
        let bare: PathHook = r#"nat:POSTROUTING:rule:"masq""#.parse().unwrap();
        assert_eq!(bare.verdict, None);
        for bad in [
            r#"filter:INPUT:rule:"""#,
            r#"filter:INPUT:rule:"open"#,
            r#"INPUT:rule:"x""#,
            r#"filter:INPUT:rule:"x"drop"#,
        ] {
            assert!(bad.parse::<PathHook>().unwrap_err().contains("by comment"), "{bad}");
        }
    }
}
