//! Mutants of a native nftables ruleset (`nft -f` text, one rule per line, as `nft list
//! ruleset` writes it). A chain whose lines this reader cannot follow (a rule spread over
//! several lines, a brace it cannot balance) gives no mutants rather than wrong ones.

use super::iptables::nat_changes;
use super::{ChainAt, LineEdit, Operator, Target};
use crate::firewall::Family;

/// Matches a negation turns around: `iifname "x"` ↔ `iifname != "x"`.
const NEGATABLE: &[&str] = &["iifname", "oifname", "iif", "oif", "saddr", "daddr", "dport", "sport", "state"];

/// Words of a statement that decides what happens to a packet; a rule without any (`log
/// prefix "x"`, `meta nftrace set 1`) only observes, and is not mutated.
const DECIDING: &[&str] = &[
    "accept",
    "drop",
    "reject",
    "jump",
    "goto",
    "return",
    "dnat",
    "snat",
    "masquerade",
    "redirect",
    "queue",
    "set",
    "mark",
];

/// One rule line of a chain.
struct RuleLine<'a> {
    line: usize,
    text: &'a str,
    table: String,
    chain: String,
    num: u32,
}

/// A base chain's header (`type filter hook forward priority 0; policy drop;`).
struct Header<'a> {
    line: usize,
    text: &'a str,
    table: String,
    chain: String,
}

/// Which families a table of this family carries.
fn families(family: &str) -> Vec<Family> {
    match family {
        "ip" => vec![Family::V4],
        "ip6" => vec![Family::V6],
        _ => vec![Family::V4, Family::V6],
    }
}

fn braces(l: &str) -> i32 {
    let (mut n, mut quoted) = (0, false);
    for c in l.chars() {
        match c {
            '"' => quoted = !quoted,
            '{' if !quoted => n += 1,
            '}' if !quoted => n -= 1,
            _ => {}
        }
    }
    n
}

/// The rule lines and base-chain headers, each chain's with its table's families; chains it
/// cannot follow left out.
#[allow(clippy::type_complexity)]
fn read(text: &str) -> (Vec<(RuleLine<'_>, Vec<Family>)>, Vec<(Header<'_>, Vec<Family>)>) {
    let (mut rules, mut headers) = (vec![], vec![]);
    let (mut table, mut fam) = (None::<String>, String::new());
    let mut chain: Option<(String, Vec<(RuleLine, Vec<Family>)>, Vec<(Header, Vec<Family>)>, bool)> = None;
    let mut skip_depth = 0;
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if skip_depth > 0 {
            skip_depth += braces(l);
            continue;
        }
        let words: Vec<&str> = l.split_whitespace().collect();
        if let Some((name, rs, hs, ok)) = &mut chain {
            if l == "}" {
                if *ok {
                    rules.append(rs);
                    headers.append(hs);
                }
                chain = None;
                continue;
            }
            if braces(l) != 0 {
                *ok = false;
                continue;
            }
            let t = table.clone().unwrap_or_default();
            if words.first() == Some(&"type") || words.first() == Some(&"policy") {
                hs.push((Header { line: i + 1, text: raw, table: t, chain: name.clone() }, families(&fam)));
            } else {
                let num = rs.len() as u32 + 1;
                rs.push((RuleLine { line: i + 1, text: raw, table: t, chain: name.clone(), num }, families(&fam)));
            }
            continue;
        }
        match words.as_slice() {
            ["table", family, name, "{"] => {
                table = Some(name.to_string());
                fam = family.to_string();
            }
            ["table", name, "{"] => {
                table = Some(name.to_string());
                fam = "ip".into();
            }
            ["chain", name, "{"] if table.is_some() => chain = Some((name.to_string(), vec![], vec![], true)),
            ["}"] => table = None,
            _ if braces(l) > 0 => skip_depth = braces(l),
            _ => {}
        }
    }
    (rules, headers)
}

/// Mutants of the native nft ruleset of netns `netns`.
pub(super) fn mutants(text: &str, netns: &str) -> Vec<LineEdit> {
    let (rules, headers) = read(text);
    let mut out = vec![];
    for (h, fams) in &headers {
        let l = h.text;
        let target = Target::Policy(ChainAt {
            netns: netns.into(),
            families: fams.clone(),
            table: h.table.clone(),
            chain: h.chain.clone(),
        });
        let after = if l.contains("policy drop") {
            l.replacen("policy drop", "policy accept", 1)
        } else if l.contains("policy accept") {
            l.replacen("policy accept", "policy drop", 1)
        } else if l.trim_start().starts_with("type filter") && l.contains("hook") {
            // A base chain without a policy accepts.
            format!("{} policy drop;", l.trim_end())
        } else {
            continue;
        };
        if !l.contains("type filter")
            && !headers.iter().any(|(o, _)| o.chain == h.chain && o.table == h.table && o.text.contains("type filter"))
        {
            continue;
        }
        out.push(LineEdit::changed(Operator::FlipPolicy, h.line, l.trim(), after.trim().to_string(), None, target));
    }
    let mutable =
        |r: &RuleLine| !r.text.contains("nftrace") && r.text.split_whitespace().any(|w| DECIDING.contains(&w));
    for (k, (r, fams)) in rules.iter().enumerate() {
        if !mutable(r) {
            continue;
        }
        let at =
            ChainAt { netns: netns.into(), families: fams.clone(), table: r.table.clone(), chain: r.chain.clone() };
        let rule = |nums: Vec<u32>| Target::Rules { at: at.clone(), nums };
        let chain = Target::Chain(at.clone());
        let before = r.text.trim().to_string();
        let words: Vec<&str> = before.split_whitespace().collect();
        let edit = |operator, after: String, tag: Option<&str>, target| {
            LineEdit::changed(operator, r.line, &before, after, tag, target)
        };
        out.push(LineEdit::deleted(r.line, &before, rule(vec![r.num])));
        // The verdict is the last statement before a trailing `comment "..."`.
        let end = words.iter().position(|w| *w == "comment").unwrap_or(words.len());
        if let Some(v) = words[..end].iter().rposition(|w| matches!(*w, "accept" | "drop" | "reject")) {
            let flipped = if words[v] == "accept" {
                "drop"
            } else if words[v] == "drop" {
                "accept"
            } else {
                "drop"
            };
            // `reject with icmpx type port-unreachable`: its options go with it.
            let stop = if words[v] == "reject" {
                words[v + 1..end]
                    .iter()
                    .position(|w| {
                        *w != "with"
                            && !w.contains("icmp")
                            && *w != "type"
                            && !w.ends_with("unreachable")
                            && !w.ends_with("prohibited")
                            && *w != "tcp"
                            && *w != "reset"
                    })
                    .map_or(end, |p| v + 1 + p)
            } else {
                v + 1
            };
            let mut w: Vec<&str> = words[..v].to_vec();
            w.push(flipped);
            w.extend(&words[stop..]);
            out.push(edit(Operator::FlipVerdict, w.join(" "), None, rule(vec![r.num])));
        }
        if let Some(i) = words.iter().position(|w| matches!(*w, "dnat" | "snat"))
            && let Some(to) = words[i..].iter().position(|w| *w == "to").map(|p| i + p)
            && let Some(value) = words.get(to + 1)
        {
            for (tag, changed) in nat_changes(value, true) {
                let mut w = words.clone();
                w[to + 1] = &changed;
                out.push(edit(Operator::NatTarget, w.join(" "), Some(tag), rule(vec![r.num])));
            }
        }
        for (i, w) in words[..end].iter().enumerate() {
            if !NEGATABLE.contains(w) || i + 1 >= end {
                continue;
            }
            let mut n = words.clone();
            if words[i + 1] == "!=" {
                n.remove(i + 1);
            } else {
                n.insert(i + 1, "!=");
            }
            let tag = if matches!(*w, "saddr" | "daddr" | "dport" | "sport") && i > 0 {
                format!("{} {w}", words[i - 1])
            } else {
                w.to_string()
            };
            out.push(edit(Operator::NegateMatch, n.join(" "), Some(&tag), chain.clone()));
        }
        // `ct state established,related` and port matches can go; the rule still loads.
        for (i, w) in words[..end].iter().enumerate() {
            let drop = match *w {
                "state" if i > 0 && words[i - 1] == "ct" => Some((i - 1, "ct state")),
                "dport" | "sport" if i > 0 => Some((i - 1, *w)),
                _ => None,
            };
            let Some((start, tag)) = drop else { continue };
            let value_at = if words.get(i + 1) == Some(&"!=") { i + 2 } else { i + 1 };
            if value_at >= end {
                continue;
            }
            let mut n: Vec<&str> = words[..start].to_vec();
            n.extend(&words[value_at + 1..]);
            out.push(edit(Operator::DropMatch, n.join(" "), Some(tag), chain.clone()));
        }
        if let Some((next, _)) = rules[k + 1..].iter().find(|(x, _)| x.table == r.table && x.chain == r.chain)
            && mutable(next)
        {
            out.push(LineEdit::swapped(r.line, &before, next.line, next.text.trim(), rule(vec![r.num, next.num])));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER: &str = "table ip filter {\n  chain forward {\n    type filter hook forward priority 0; policy drop;\n    \
                          oifname \"docker0\" ct state related,established accept\n    iifname \"docker0\" oifname != \"docker0\" accept\n  }\n}\n\
                          table ip nat {\n  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n    \
                          ip saddr 192.168.0.0/20 oifname != \"docker0\" masquerade\n    ip daddr 10.0.0.1 tcp dport 80 dnat to 192.168.0.2:8080\n  }\n}\n";

    fn afters(edits: &[LineEdit], op: Operator) -> Vec<String> {
        edits.iter().filter(|e| e.operator == op).filter_map(|e| e.after.clone()).collect()
    }

    #[test]
    fn a_filter_base_chain_flips_its_policy_and_a_nat_chain_does_not() {
        let edits = mutants(DOCKER, "host");
        assert_eq!(afters(&edits, Operator::FlipPolicy), ["type filter hook forward priority 0; policy accept;"]);
    }

    #[test]
    fn rules_are_numbered_per_chain() {
        let edits = mutants(DOCKER, "host");
        let deleted: Vec<(usize, String, Vec<u32>)> = edits
            .iter()
            .filter(|e| e.operator == Operator::DeleteRule)
            .map(|e| match &e.target {
                Target::Rules { at, nums } => (e.line, at.chain.clone(), nums.clone()),
                t => panic!("{t:?}"),
            })
            .collect();
        assert_eq!(
            deleted,
            [
                (4, "forward".into(), vec![1]),
                (5, "forward".into(), vec![2]),
                (11, "postrouting".into(), vec![1]),
                (12, "postrouting".into(), vec![2])
            ]
        );
    }

    #[test]
    fn verdicts_matches_and_nat_targets_change() {
        let edits = mutants(DOCKER, "host");
        assert_eq!(
            afters(&edits, Operator::FlipVerdict),
            [
                "oifname \"docker0\" ct state related,established drop",
                "iifname \"docker0\" oifname != \"docker0\" drop"
            ]
        );
        assert_eq!(
            afters(&edits, Operator::DropMatch),
            ["oifname \"docker0\" accept", "ip daddr 10.0.0.1 dnat to 192.168.0.2:8080"]
        );
        assert!(
            afters(&edits, Operator::NegateMatch)
                .contains(&"iifname \"docker0\" oifname \"docker0\" accept".to_string())
        );
        assert_eq!(
            afters(&edits, Operator::NatTarget),
            [
                "ip daddr 10.0.0.1 tcp dport 80 dnat to 192.168.0.2:8081",
                "ip daddr 10.0.0.1 tcp dport 80 dnat to 192.168.0.3:8080"
            ]
        );
    }

    #[test]
    fn a_chain_this_reader_cannot_follow_gives_no_mutants() {
        let text = "table inet t {\n  chain c {\n    type filter hook input priority 0;\n    tcp dport { 22,\n 80 } accept\n  }\n}\n";
        assert!(mutants(text, "host").is_empty());
    }
}
