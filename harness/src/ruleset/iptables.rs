//! `iptables-save` / `ip6tables-save` text (either backend's) read into a [`Ruleset`].

use super::{Chain, Rule, Ruleset, Table};
use crate::observe::trace::Verdict;

/// Targets that change the packet or log it and let the next rule see it.
const CONTINUING: &[&str] = &[
    "LOG",
    "NFLOG",
    "ULOG",
    "TRACE",
    "MARK",
    "CONNMARK",
    "CT",
    "NOTRACK",
    "TOS",
    "DSCP",
    "TTL",
    "HL",
    "CLASSIFY",
    "SET",
    "AUDIT",
    "CHECKSUM",
    "TCPMSS",
    "TEE",
    "SECMARK",
    "CONNSECMARK",
    "IDLETIMER",
    "LED",
    "RATEEST",
    "HMARK",
    "ECN",
    "TCPOPTSTRIP",
];

/// NAT targets: they end the chain with an accept (the rule's text says which target).
const NAT: &[&str] = &["MASQUERADE", "SNAT", "DNAT", "REDIRECT", "NETMAP"];

/// Reads a save listing of `family` (`ip` or `ip6`). Lines it does not know are left out:
/// the listing comes from the tools, which wrote it whole.
pub fn parse(text: &str, family: &str) -> Ruleset {
    let mut set = Ruleset { family: family.to_string(), tables: vec![] };
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('*') {
            set.tables.push(Table { name: name.trim().to_string(), chains: vec![] });
            continue;
        }
        let Some(table) = set.tables.last_mut() else { continue };
        if let Some(decl) = line.strip_prefix(':') {
            let mut words = decl.split_whitespace();
            let (Some(name), Some(policy)) = (words.next(), words.next()) else { continue };
            let policy = Verdict::of_policy(policy);
            let hook = policy.as_ref().map(|_| name.to_ascii_lowercase());
            let kind = Some(chain_type(&table.name, name).to_string());
            table.chains.push(Chain { name: name.to_string(), kind, hook, policy, rules: vec![] });
            continue;
        }
        // `iptables-save -c` puts `[packets:bytes] ` before the rule.
        let rule = match line.strip_prefix('[') {
            Some(rest) => rest.split_once("] ").map_or(line, |(_, r)| r.trim_start()),
            None => line,
        };
        let words = split_words(rule);
        let [verb, chain, ..] = words.as_slice() else { continue };
        // A restore file may insert (`-I CHAIN [N]`): netpath's own TRACE rules do.
        let at = match verb.as_str() {
            "-A" => None,
            "-I" => Some(words.get(2).and_then(|n| n.parse::<usize>().ok()).unwrap_or(1).max(1) - 1),
            _ => continue,
        };
        // A restore file may append to a built-in chain it does not declare.
        if !table.chains.iter().any(|c| &c.name == chain)
            && let Some(c) = builtin(&table.name, chain)
        {
            table.chains.push(c);
        }
        let comment = words.windows(2).find(|w| w[0] == "--comment").map(|w| w[1].clone());
        let target = words.windows(2).find_map(|w| match w[0].as_str() {
            "-j" | "--jump" => Some(Target::Jump(w[1].clone())),
            "-g" | "--goto" => Some(Target::Goto(w[1].clone())),
            _ => None,
        });
        // A save listing declares every chain of a table before its first rule.
        let verdict = target.unwrap_or(Target::None).verdict(&table.chains);
        let Some(c) = table.chains.iter_mut().find(|c| &c.name == chain) else { continue };
        let r = Rule { text: rule.to_string(), comment, verdict };
        match at {
            Some(i) => c.rules.insert(i.min(c.rules.len()), r),
            None => c.rules.push(r),
        }
    }
    set
}

/// The built-in chains of each iptables table.
pub const BUILTIN: &[(&str, &[&str])] = &[
    ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
    ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
    ("mangle", &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]),
    ("raw", &["PREROUTING", "OUTPUT"]),
    ("security", &["INPUT", "FORWARD", "OUTPUT"]),
];

/// Built-in chain `chain` of `table` with the policy it has when nothing set one (accept).
pub fn builtin(table: &str, chain: &str) -> Option<Chain> {
    let (_, chains) = BUILTIN.iter().find(|(t, _)| *t == table)?;
    chains.contains(&chain).then(|| Chain {
        name: chain.to_string(),
        kind: Some(chain_type(table, chain).to_string()),
        hook: Some(chain.to_ascii_lowercase()),
        policy: Some(Verdict::Accept),
        rules: vec![],
    })
}

/// Gives every table of `set` the built-in chains it lacks: iptables-legacy makes them all with
/// the table, whatever the restore file declares (iptables-nft only those it declares or uses).
pub fn add_builtins(set: &mut Ruleset) {
    for t in &mut set.tables {
        let Some((_, chains)) = BUILTIN.iter().find(|(n, _)| *n == t.name) else { continue };
        for c in chains.iter() {
            if t.chain(c).is_none() {
                t.chains.extend(builtin(&t.name, c));
            }
        }
    }
}

/// The type nf_tables gives the chains of an iptables table.
fn chain_type(table: &str, chain: &str) -> &'static str {
    match (table, chain) {
        ("nat", _) => "nat",
        ("mangle", "OUTPUT") => "route",
        _ => "filter",
    }
}

/// What follows `-j`/`-g`.
enum Target {
    None,
    Jump(String),
    Goto(String),
}

impl Target {
    fn verdict(self, chains: &[Chain]) -> Option<Verdict> {
        let t = match self {
            Target::None => return Some(Verdict::Continue),
            Target::Goto(c) => return Some(Verdict::Goto(c)),
            Target::Jump(t) => t,
        };
        Some(match t.as_str() {
            "ACCEPT" => Verdict::Accept,
            "DROP" => Verdict::Drop,
            "REJECT" => Verdict::Reject,
            "RETURN" => Verdict::Return,
            "QUEUE" | "NFQUEUE" => Verdict::Queue,
            t if chains.iter().any(|c| c.name == t) => Verdict::Jump(t.to_string()),
            t if NAT.contains(&t) => Verdict::Accept,
            t if CONTINUING.contains(&t) => Verdict::Continue,
            _ => return None,
        })
    }
}

/// Splits a saved rule into words the way a shell would: `"a b"` is one word, `\"` a quote.
pub fn split_words(line: &str) -> Vec<String> {
    let mut out = vec![];
    let mut word: Option<String> = None;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            '"' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => out.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    out.extend(word);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::trace::Hook;

    const SAVE: &str = "# Generated by iptables-save\n*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        -A PREROUTING -p icmp -j TRACE\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
        :DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n\
        -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n-A DOCKER -i docker0 -j RETURN\nCOMMIT\n\
        *filter\n:INPUT DROP [3:252]\n:FORWARD ACCEPT [0:0]\n:USER - [0:0]\n\
        [5:420] -A INPUT -p tcp -m tcp --dport 22 -m comment --comment \"allow \\\"ssh\\\"\" -j ACCEPT\n\
        -A INPUT -p udp -j REJECT --reject-with icmp-port-unreachable\n-A FORWARD -j USER\n-A FORWARD -g USER\n\
        -A FORWARD -p icmp\n-A FORWARD -j NO-SUCH-TARGET\nCOMMIT\n";

    fn facts(hook: &str) -> super::super::HookFacts {
        parse(SAVE, "ip").facts(&hook.parse::<Hook>().unwrap())
    }

    #[test]
    fn each_trace_position_has_its_verdict() {
        let v = |h: &str| facts(h).verdict.map(|v| v.to_string());
        assert_eq!(v("raw:PREROUTING:rule:1").as_deref(), Some("continue"));
        assert_eq!(v("raw:PREROUTING:policy:2").as_deref(), Some("accept"));
        assert_eq!(v("nat:PREROUTING:rule:1").as_deref(), Some("jump DOCKER"));
        assert_eq!(v("nat:POSTROUTING:rule:1").as_deref(), Some("accept"));
        assert_eq!(v("nat:DOCKER:rule:1").as_deref(), Some("return"));
        assert_eq!(v("nat:DOCKER:return:2").as_deref(), Some("return"));
        // Legacy names an explicit RETURN rule `return:N` too.
        assert_eq!(v("nat:DOCKER:return:1").as_deref(), Some("return"));
        assert_eq!(v("filter:INPUT:rule:1").as_deref(), Some("accept"));
        assert_eq!(v("filter:INPUT:rule:2").as_deref(), Some("reject"));
        assert_eq!(v("filter:INPUT:policy:3").as_deref(), Some("drop"));
        assert_eq!(v("filter:FORWARD:rule:1").as_deref(), Some("jump USER"));
        assert_eq!(v("filter:FORWARD:rule:2").as_deref(), Some("goto USER"));
        assert_eq!(v("filter:FORWARD:rule:3").as_deref(), Some("continue"));
        assert_eq!(v("filter:FORWARD:rule:4"), None, "an unknown target says nothing");
        // A position the listing does not have (the ruleset changed) says nothing either.
        assert_eq!(v("filter:INPUT:policy:2"), None);
        assert_eq!(v("filter:INPUT:rule:9"), None);
    }

    #[test]
    fn rules_keep_their_text_and_comment_and_chains_their_type() {
        let f = facts("filter:INPUT:rule:1");
        let rule = f.rule.unwrap();
        assert_eq!(rule.comment.as_deref(), Some("allow \"ssh\""));
        assert!(rule.text.starts_with("-A INPUT -p tcp"), "{}", rule.text);
        let chain = f.chain.unwrap();
        assert_eq!(
            (chain.family.as_str(), chain.kind.as_deref(), chain.hook.as_deref()),
            ("ip", Some("filter"), Some("input"))
        );
        let nat = facts("nat:DOCKER:rule:1").chain.unwrap();
        assert_eq!((nat.kind.as_deref(), nat.hook), (Some("nat"), None));
        assert_eq!(facts("filter:INPUT:policy:3").rule, None);
    }

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"-A X -m comment --comment "a b" -j Y"#),
            ["-A", "X", "-m", "comment", "--comment", "a b", "-j", "Y"]
        );
        assert_eq!(split_words(r#"--comment "" -j Y"#), ["--comment", "", "-j", "Y"]);
    }
}
