//! Mutants of `iptables-save`, `ip6tables-save` and `ebtables-save` text.

use super::{ChainAt, LineEdit, Operator, Target};
use crate::firewall::Family;
use crate::ruleset::iptables::split_words;

/// Targets that observe or mark and decide nothing a probe meets (and netpath's own tracing):
/// their rules are not mutated.
const NOT_DATAPATH: &[&str] = &["TRACE", "LOG", "NFLOG", "ULOG", "NFACCT", "AUDIT", "COUNTER"];

/// Tables whose built-in chains may take a DROP policy (the kernel refuses one in `nat`).
const POLICY_TABLES: &[&str] = &["filter", "mangle", "security"];

/// Matches whose value a negation turns around (`-i X` → `! -i X`). A negated `-p tcp` before
/// `--dport` does not load (the kernel's tcp match wants its protocol): such a mutant is an
/// error, not counted.
const NEGATABLE: &[&str] = &[
    "-p",
    "--protocol",
    "-i",
    "--in-interface",
    "-o",
    "--out-interface",
    "-s",
    "--source",
    "-d",
    "--destination",
    "--ctstate",
    "--state",
    "--dport",
    "--sport",
    "--match-set",
];

/// Matches a rule can lose and stay loadable: `(option, words it takes, the -m module it
/// needs, which goes too when nothing else of it remains)`.
const DROPPABLE: &[(&str, usize, Option<&str>)] = &[
    ("--ctstate", 1, Some("conntrack")),
    ("--state", 1, Some("state")),
    ("--dport", 1, None),
    ("--sport", 1, None),
    ("--dports", 1, Some("multiport")),
    ("--match-set", 2, Some("set")),
];

/// One `-A` line of a save text: where, in which table and chain, its number in the chain.
struct RuleLine<'a> {
    line: usize,
    text: &'a str,
    table: String,
    chain: String,
    num: u32,
}

/// A built-in chain's declaration: `(line, table, chain, policy)`.
type Declaration = (usize, String, String, String);

/// The rule lines and the built-in chain declarations.
fn read(text: &str) -> (Vec<RuleLine<'_>>, Vec<Declaration>) {
    let (mut rules, mut chains) = (vec![], vec![]);
    let mut table = String::new();
    let mut counts = std::collections::BTreeMap::<(String, String), u32>::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if let Some(t) = l.strip_prefix('*') {
            table = t.trim().to_string();
        } else if let Some(decl) = l.strip_prefix(':') {
            let mut w = decl.split_whitespace();
            if let (Some(chain), Some(policy)) = (w.next(), w.next())
                && policy != "-"
            {
                chains.push((i + 1, table.clone(), chain.to_string(), policy.to_string()));
            }
        } else if let Some(rest) = l.strip_prefix("-A ") {
            let Some(chain) = rest.split_whitespace().next() else { continue };
            let n = counts.entry((table.clone(), chain.to_string())).or_default();
            *n += 1;
            rules.push(RuleLine { line: i + 1, text: raw, table: table.clone(), chain: chain.to_string(), num: *n });
        }
    }
    (rules, chains)
}

/// A rule's words back into a line a shell (and iptables-restore) reads the same.
fn join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if w.is_empty() || w.contains(char::is_whitespace) || w.contains('"') {
                format!("\"{}\"", w.replace('"', "\\\""))
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The target word's index (after `-j`/`--jump`/`-g`/`--goto`).
fn target_at(words: &[String]) -> Option<usize> {
    words
        .iter()
        .position(|w| matches!(w.as_str(), "-j" | "--jump" | "-g" | "--goto"))
        .map(|i| i + 1)
        .filter(|i| *i < words.len())
}

/// Mutants of an iptables-save (`family` V4) or ip6tables-save (V6) text of netns `netns`.
pub(super) fn mutants(text: &str, netns: &str, family: Family) -> Vec<LineEdit> {
    let (rules, chains) = read(text);
    let families = vec![family];
    let at = |table: &str, chain: &str| ChainAt {
        netns: netns.into(),
        families: families.clone(),
        table: table.into(),
        chain: chain.into(),
    };
    let rule_target = |r: &RuleLine, nums: Vec<u32>| Target::Rules { at: at(&r.table, &r.chain), nums };
    let mut out = vec![];
    for (line, table, chain, policy) in &chains {
        if !POLICY_TABLES.contains(&table.as_str()) {
            continue;
        }
        let flipped = match policy.as_str() {
            "ACCEPT" => "DROP",
            "DROP" => "ACCEPT",
            _ => continue,
        };
        let raw = text.lines().nth(line - 1).unwrap_or_default();
        out.push(LineEdit::changed(
            Operator::FlipPolicy,
            *line,
            raw.trim(),
            raw.replacen(&format!(" {policy}"), &format!(" {flipped}"), 1).trim().to_string(),
            None,
            Target::Policy(at(table, chain)),
        ));
    }
    let mutable = |r: &RuleLine| {
        let w = split_words(r.text);
        r.table != "raw" && target_at(&w).is_none_or(|t| !NOT_DATAPATH.contains(&w[t].as_str()))
    };
    for (k, r) in rules.iter().enumerate() {
        if !mutable(r) {
            continue;
        }
        let words = split_words(r.text);
        let before = r.text.trim().to_string();
        let edit = |operator, after: Vec<String>, tag: Option<&str>, target| {
            LineEdit::changed(operator, r.line, &before, join(&after), tag, target)
        };
        out.push(LineEdit::deleted(r.line, &before, rule_target(r, vec![r.num])));
        if let Some(t) = target_at(&words) {
            let flipped = match words[t].as_str() {
                "ACCEPT" => Some("DROP"),
                "DROP" => Some("ACCEPT"),
                "REJECT" => Some("DROP"),
                _ => None,
            };
            if let Some(f) = flipped {
                let mut w: Vec<String> = words[..t].to_vec();
                w.push(f.to_string());
                // REJECT's own options go with it.
                let mut rest = words[t + 1..].iter();
                while let Some(x) = rest.next() {
                    if x == "--reject-with" {
                        rest.next();
                    } else {
                        w.push(x.clone());
                    }
                }
                out.push(edit(Operator::FlipVerdict, w, None, rule_target(r, vec![r.num])));
            }
            for (opt, with_port) in
                [("--to-destination", true), ("--to-source", true), ("--to-ports", false), ("--to", true)]
            {
                let Some(i) = words.iter().position(|w| w == opt) else { continue };
                let Some(value) = words.get(i + 1) else { continue };
                for (tag, changed) in nat_changes(value, with_port) {
                    let mut w = words.clone();
                    w[i + 1] = changed;
                    out.push(edit(Operator::NatTarget, w, Some(tag), rule_target(r, vec![r.num])));
                }
            }
        }
        let chain_target = Target::Chain(at(&r.table, &r.chain));
        for (i, w) in words.iter().enumerate() {
            if !NEGATABLE.contains(&w.as_str()) || words.get(i + 1).is_none() {
                continue;
            }
            let mut n = words.clone();
            // `! -i X` (the form iptables-save writes) or the older `-i ! X`.
            if i > 0 && words[i - 1] == "!" {
                n.remove(i - 1);
            } else if words.get(i + 1).is_some_and(|x| x == "!") {
                n.remove(i + 1);
            } else {
                n.insert(i, "!".to_string());
            }
            out.push(edit(Operator::NegateMatch, n, Some(w), chain_target.clone()));
        }
        for (opt, takes, module) in DROPPABLE {
            let Some(i) = words.iter().position(|w| w == opt) else { continue };
            let start = if i > 0 && words[i - 1] == "!" { i - 1 } else { i };
            let mut n: Vec<String> = words[..start].to_vec();
            n.extend(words.iter().skip(i + 1 + takes).cloned());
            if let Some(m) = module {
                n = without_empty_module(n, m);
            }
            out.push(edit(Operator::DropMatch, n, Some(opt), chain_target.clone()));
        }
        if let Some(next) = rules[k + 1..].iter().find(|x| x.table == r.table && x.chain == r.chain)
            && mutable(next)
        {
            out.push(LineEdit::swapped(
                r.line,
                &before,
                next.line,
                next.text.trim(),
                rule_target(r, vec![r.num, next.num]),
            ));
        }
    }
    out
}

/// `-m MODULE` removed when no option of it is left before the next `-m`/`-j`.
fn without_empty_module(words: Vec<String>, module: &str) -> Vec<String> {
    let Some(m) = words.windows(2).position(|w| w[0] == "-m" && w[1] == module) else { return words };
    let next = words[m + 2..].first().map(String::as_str);
    let empty = next.is_none_or(|w| matches!(w, "-m" | "--match" | "-j" | "--jump" | "-g" | "--goto" | "!"));
    if !empty {
        return words;
    }
    let mut w = words;
    w.drain(m..m + 2);
    w
}

/// A NAT target value changed: its port plus one, its address's last part plus one.
/// `10.0.0.2:8080` gives `(port, 10.0.0.2:8081)` and `(address, 10.0.0.3:8080)`.
pub(super) fn nat_changes(value: &str, with_address: bool) -> Vec<(&'static str, String)> {
    let mut out = vec![];
    if !with_address {
        // `--to-ports 8080[-8090]`
        if let Ok(p) = value.split('-').next().unwrap_or_default().parse::<u16>() {
            out.push(("port", format!("{}", p.wrapping_add(1).max(1))));
        }
        return out;
    }
    // `[v6]:port`, `v4:port`, `v4`, `v6`, ranges `a-b` (changed at their start).
    let (addr, port) = if let Some(rest) = value.strip_prefix('[') {
        match rest.split_once("]:") {
            Some((a, p)) => (a.to_string(), Some(p.to_string())),
            None => (rest.trim_end_matches(']').to_string(), None),
        }
    } else if value.matches(':').count() == 1 {
        let (a, p) = value.split_once(':').unwrap_or((value, ""));
        (a.to_string(), Some(p.to_string()))
    } else {
        (value.to_string(), None)
    };
    let bracket = value.starts_with('[');
    let with = |a: &str, p: Option<&str>| match (p, bracket) {
        (Some(p), true) => format!("[{a}]:{p}"),
        (Some(p), false) => format!("{a}:{p}"),
        (None, true) => format!("[{a}]"),
        (None, false) => a.to_string(),
    };
    if let Some(p) = &port
        && let Ok(n) = p.split('-').next().unwrap_or_default().parse::<u16>()
    {
        out.push(("port", with(&addr, Some(&format!("{}", n.wrapping_add(1).max(1))))));
    }
    let first = addr.split('-').next().unwrap_or_default();
    if let Ok(ip) = first.parse::<std::net::IpAddr>() {
        let next = match ip {
            std::net::IpAddr::V4(a) => {
                let mut o = a.octets();
                o[3] = if o[3] >= 254 { 1 } else { o[3] + 1 };
                std::net::IpAddr::from(o).to_string()
            }
            std::net::IpAddr::V6(a) => {
                let mut s = a.segments();
                s[7] = s[7].wrapping_add(1);
                std::net::IpAddr::from(s).to_string()
            }
        };
        out.push(("address", with(&next, port.as_deref())));
    }
    out
}

/// Mutants of an ebtables-save text: rules deleted, verdicts and policies flipped. Its trace
/// names chains, not rules, so each acts on its whole chain.
pub(super) fn eb_mutants(text: &str, netns: &str) -> Vec<LineEdit> {
    let (rules, chains) = read(text);
    let chain_target = |table: &str, chain: &str| {
        Target::EbChain(ChainAt { netns: netns.into(), families: vec![], table: table.into(), chain: chain.into() })
    };
    let mut out = vec![];
    for (line, table, chain, policy) in &chains {
        let flipped = match policy.as_str() {
            "ACCEPT" => "DROP",
            "DROP" => "ACCEPT",
            _ => continue,
        };
        let raw = text.lines().nth(line - 1).unwrap_or_default().trim();
        out.push(LineEdit::changed(
            Operator::FlipPolicy,
            *line,
            raw,
            raw.replacen(&format!(" {policy}"), &format!(" {flipped}"), 1),
            None,
            chain_target(table, chain),
        ));
    }
    for r in &rules {
        let words = split_words(r.text);
        let t = target_at(&words);
        if t.is_some_and(|t| NOT_DATAPATH.contains(&words[t].as_str()) || words[t] == "log")
            || words.iter().any(|w| w == "--log-prefix")
        {
            continue;
        }
        let before = r.text.trim().to_string();
        out.push(LineEdit::deleted(r.line, &before, chain_target(&r.table, &r.chain)));
        if let Some(t) = t {
            let flipped = match words[t].as_str() {
                "ACCEPT" => "DROP",
                "DROP" => "ACCEPT",
                _ => continue,
            };
            let mut w = words.clone();
            w[t] = flipped.to_string();
            out.push(LineEdit::changed(
                Operator::FlipVerdict,
                r.line,
                &before,
                join(&w),
                None,
                chain_target(&r.table, &r.chain),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_values_change_their_port_and_their_address() {
        assert_eq!(
            nat_changes("10.0.0.2:8080", true),
            [("port", "10.0.0.2:8081".to_string()), ("address", "10.0.0.3:8080".to_string())]
        );
        assert_eq!(nat_changes("192.168.1.254", true), [("address", "192.168.1.1".to_string())]);
        assert_eq!(
            nat_changes("[fd00::2]:80", true),
            [("port", "[fd00::2]:81".to_string()), ("address", "[fd00::3]:80".to_string())]
        );
        assert_eq!(nat_changes("fd00::2", true), [("address", "fd00::3".to_string())]);
        assert_eq!(nat_changes("8080", false), [("port", "8081".to_string())]);
    }

    #[test]
    fn a_dropped_match_takes_its_empty_module_along() {
        let words = split_words("-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT");
        let edits = mutants(&format!("*filter\n:FORWARD DROP [0:0]\n{}\nCOMMIT\n", join(&words)), "host", Family::V4);
        let dropped: Vec<_> = edits.iter().filter(|e| e.operator == Operator::DropMatch).collect();
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].after.as_deref(), Some("-A FORWARD -o docker0 -j ACCEPT"));
        let negated: Vec<_> =
            edits.iter().filter(|e| e.operator == Operator::NegateMatch).filter_map(|e| e.after.as_deref()).collect();
        assert_eq!(
            negated,
            [
                "-A FORWARD ! -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A FORWARD -o docker0 -m conntrack ! --ctstate RELATED,ESTABLISHED -j ACCEPT",
            ]
        );
    }

    #[test]
    fn rules_are_numbered_per_table_and_chain_and_tracing_rules_are_left_alone() {
        let text = "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j TRACE\nCOMMIT\n*nat\n:POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n\
                    -A POSTROUTING -s 10.0.0.0/8 -j MASQUERADE\n-A DOCKER -i docker0 -j RETURN\n-A POSTROUTING -o eth0 -j LOG\n\
                    -A POSTROUTING -o eth1 -j SNAT --to-source 192.0.2.1\nCOMMIT\n";
        let edits = mutants(text, "host", Family::V4);
        let deleted: Vec<(usize, Target)> =
            edits.iter().filter(|e| e.operator == Operator::DeleteRule).map(|e| (e.line, e.target.clone())).collect();
        let rule = |chain: &str, n: u32| Target::Rules {
            at: ChainAt { netns: "host".into(), families: vec![Family::V4], table: "nat".into(), chain: chain.into() },
            nums: vec![n],
        };
        assert_eq!(deleted, [(8, rule("POSTROUTING", 1)), (9, rule("DOCKER", 1)), (11, rule("POSTROUTING", 3))]);
        // No policy flip in nat (the kernel refuses DROP there); the LOG rule is not swapped.
        assert!(edits.iter().all(|e| e.operator != Operator::FlipPolicy && e.operator != Operator::SwapRules));
        let nat: Vec<_> =
            edits.iter().filter(|e| e.operator == Operator::NatTarget).filter_map(|e| e.after.as_deref()).collect();
        assert_eq!(nat, ["-A POSTROUTING -o eth1 -j SNAT --to-source 192.0.2.2"]);
    }

    #[test]
    fn quoted_words_stay_quoted() {
        let line =
            r#"-A KUBE-SEP-1 -m comment --comment "testservice1 ep1" -p tcp -j DNAT --to-destination 10.0.0.2:80"#;
        assert_eq!(join(&split_words(line)), line);
    }
}
