//! A native nft script as a scenario writes it (`nft -f` syntax) read into [`Ruleset`]s, to know
//! before the run which tables, chains (with `type X hook Y` and policy), rules and rule comments
//! it makes.
//!
//! Only a subset is followed: `table [FAMILY] NAME { ... }` blocks holding `chain NAME { ... }`
//! blocks (sets, maps, flowtables and other named objects are skipped whole), and the flat
//! commands `add|create table`, `add|create chain` (with or without a `{ type ...; }` block),
//! `add|insert rule`, `flush ruleset`, `delete table`, `define`. Statements end at a newline or
//! `;`; a rule's anonymous sets and maps may span lines. What the parser does not follow, it does
//! not guess: a table it meets such syntax in is *unread* (a pattern naming it is not checked),
//! and `include` or an unknown command makes the whole script unread.

use super::{Chain, Rule, Ruleset, Table};
use crate::observe::trace::Verdict;

/// What a script makes, as far as the parser follows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// Per family, its tables.
    pub rulesets: Vec<Ruleset>,
    /// Tables whose contents the parser did not follow (by name).
    pub unread: Vec<String>,
    /// The parser did not follow the script at all (`include`, an unknown command).
    pub opaque: bool,
}

/// One token: a word, a quoted string (without its quotes), or a separator.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    /// A newline or `;`.
    End,
}

fn tokens(text: &str) -> Vec<Token> {
    let mut out = vec![];
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Token>| {
        if !word.is_empty() {
            out.push(Token::Word(std::mem::take(word)));
        }
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' if word.is_empty() => {
                // A comment runs to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push(Token::End);
                        break;
                    }
                }
            }
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
                flush(&mut word, &mut out);
            }
            '"' => {
                flush(&mut word, &mut out);
                let mut q = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    q.push(c);
                }
                out.push(Token::Quoted(q));
            }
            '{' | '}' | ';' | '\n' => {
                flush(&mut word, &mut out);
                out.push(match c {
                    '{' => Token::Open,
                    '}' => Token::Close,
                    _ => Token::End,
                });
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

const FAMILIES: &[&str] = &["ip", "ip6", "inet", "arp", "bridge", "netdev"];

/// Named objects a table may hold besides chains: skipped whole.
const OBJECTS: &[&str] =
    &["set", "map", "flowtable", "counter", "quota", "ct", "limit", "secmark", "synproxy", "tunnel"];

/// Reads an nft script.
pub fn parse(text: &str) -> Script {
    let mut p = Parser { toks: tokens(text), at: 0, script: Script::default() };
    p.top();
    p.script
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
    script: Script,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.at)
    }

    /// The words (and quoted strings) up to the end of the statement or an opening brace, which
    /// is left to read.
    fn statement(&mut self) -> Vec<Token> {
        let mut out = vec![];
        while let Some(t) = self.peek() {
            match t {
                Token::End => {
                    self.at += 1;
                    break;
                }
                Token::Open | Token::Close => break,
                t => {
                    out.push(t.clone());
                    self.at += 1;
                }
            }
        }
        out
    }

    /// Skips a `{ ... }` block (the `{` is next), nested blocks included.
    fn skip_block(&mut self) {
        let mut depth = 0;
        while let Some(t) = self.next() {
            match t {
                Token::Open => depth += 1,
                Token::Close => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    fn top(&mut self) {
        while self.peek().is_some() {
            if self.script.opaque {
                return;
            }
            let words = words(&self.statement());
            let w: Vec<&str> = words.iter().map(String::as_str).collect();
            let block = self.peek() == Some(&Token::Open);
            match w.as_slice() {
                [] if block => {
                    self.script.opaque = true;
                }
                [] => {
                    if self.peek() == Some(&Token::Close) {
                        self.script.opaque = true;
                    }
                }
                ["flush", "ruleset", ..] => self.script = Script::default(),
                ["define" | "redefine" | "undefine", ..] if !block => {}
                ["table", rest @ ..] | ["add" | "create", "table", rest @ ..] => {
                    let Some((family, name)) = family_and_name(rest) else {
                        self.script.opaque = true;
                        continue;
                    };
                    self.table_mut(&family, &name);
                    if block {
                        self.table_block(&family, &name);
                    }
                }
                ["delete" | "destroy", "table", rest @ ..] if !block => match family_and_name(rest) {
                    Some((family, name)) => {
                        if let Some(set) = self.script.rulesets.iter_mut().find(|r| r.family == family) {
                            set.tables.retain(|t| t.name != name);
                        }
                    }
                    None => self.script.opaque = true,
                },
                ["add" | "create", "chain", rest @ ..] => {
                    let Some((family, table, chain)) = family_table_chain(rest) else {
                        self.script.opaque = true;
                        continue;
                    };
                    self.chain_mut(&family, &table, &chain);
                    if block {
                        self.at += 1;
                        self.chain_body(&family, &table, &chain);
                    }
                }
                ["add" | "insert", "rule", rest @ ..] => {
                    let Some((family, table, chain)) = family_table_chain(rest) else {
                        self.script.opaque = true;
                        continue;
                    };
                    if w.iter().skip(2).any(|x| matches!(*x, "position" | "handle" | "index")) {
                        self.unread(&table);
                    }
                    // The words after `[family] table chain`, then the rule's own braces
                    // (anonymous sets) and what follows them.
                    let skip = 2 + if FAMILIES.contains(&rest[0]) { 3 } else { 2 };
                    let mut toks: Vec<Token> = words.iter().skip(skip).map(|x| Token::Word(x.clone())).collect();
                    if block {
                        toks.extend(self.statement_with_blocks());
                    }
                    let rule = rule_of(&toks);
                    self.chain_mut(&family, &table, &chain).rules.push(rule);
                }
                _ => {
                    self.script.opaque = true;
                }
            }
        }
    }

    /// The rest of a statement whose braces are part of it (`{ 22, 80 }`), to its end.
    fn statement_with_blocks(&mut self) -> Vec<Token> {
        let mut out = vec![];
        let mut depth = 0usize;
        while let Some(t) = self.peek().cloned() {
            match t {
                Token::End if depth == 0 => {
                    self.at += 1;
                    break;
                }
                Token::Close if depth == 0 => break,
                Token::Open => depth += 1,
                Token::Close => depth -= 1,
                _ => {}
            }
            out.push(t);
            self.at += 1;
        }
        out
    }

    fn unread(&mut self, table: &str) {
        if !self.script.unread.iter().any(|t| t == table) {
            self.script.unread.push(table.to_string());
        }
    }

    fn table_mut(&mut self, family: &str, name: &str) -> &mut Table {
        let sets = &mut self.script.rulesets;
        let i = match sets.iter().position(|r| r.family == family) {
            Some(i) => i,
            None => {
                sets.push(Ruleset { family: family.to_string(), tables: vec![] });
                sets.len() - 1
            }
        };
        let tables = &mut sets[i].tables;
        let j = match tables.iter().position(|t| t.name == name) {
            Some(j) => j,
            None => {
                tables.push(Table { name: name.to_string(), chains: vec![] });
                tables.len() - 1
            }
        };
        &mut tables[j]
    }

    fn chain_mut(&mut self, family: &str, table: &str, chain: &str) -> &mut Chain {
        let t = self.table_mut(family, table);
        let i = match t.chains.iter().position(|c| c.name == chain) {
            Some(i) => i,
            None => {
                t.chains.push(Chain { name: chain.to_string(), ..Chain::default() });
                t.chains.len() - 1
            }
        };
        &mut t.chains[i]
    }

    /// The body of `table F N {` (the `{` is next), to its `}`.
    fn table_block(&mut self, family: &str, table: &str) {
        self.at += 1;
        loop {
            let words = words(&self.statement());
            let w: Vec<&str> = words.iter().map(String::as_str).collect();
            match (w.as_slice(), self.peek()) {
                (_, None) => {
                    self.unread(table);
                    return;
                }
                ([], Some(Token::Close)) => {
                    self.at += 1;
                    return;
                }
                (["chain", name], Some(Token::Open)) => {
                    let name = name.to_string();
                    self.chain_mut(family, table, &name);
                    self.at += 1;
                    self.chain_body(family, table, &name);
                }
                ([kind, ..], Some(Token::Open)) if OBJECTS.contains(kind) => self.skip_block(),
                (_, Some(Token::Open)) => {
                    self.unread(table);
                    self.skip_block();
                }
                ([], _) => {}
                (["flags" | "comment", ..], _) => {}
                _ => self.unread(table),
            }
        }
    }

    /// The statements of a chain after its `{`, to its `}`.
    fn chain_body(&mut self, family: &str, table: &str, chain: &str) {
        loop {
            let toks = self.statement_with_blocks();
            match self.peek() {
                None if toks.is_empty() => {
                    self.unread(table);
                    return;
                }
                Some(Token::Close) if toks.is_empty() => {
                    self.at += 1;
                    return;
                }
                _ => {}
            }
            let w = words(&toks);
            match w.first().map(String::as_str) {
                None => {}
                Some("type") => {
                    let after = |key: &str| w.windows(2).find(|x| x[0] == key).map(|x| x[1].clone());
                    let c = self.chain_mut(family, table, chain);
                    c.kind = w.get(1).cloned();
                    c.hook = after("hook");
                }
                Some("policy") => {
                    let policy = w.get(1).and_then(|p| Verdict::of_policy(p));
                    self.chain_mut(family, table, chain).policy = policy;
                }
                Some("comment" | "devices" | "device") => {}
                Some(_) => {
                    let rule = rule_of(&toks);
                    self.chain_mut(family, table, chain).rules.push(rule);
                }
            }
        }
    }
}

/// The words and quoted strings of a statement.
fn words(toks: &[Token]) -> Vec<String> {
    toks.iter()
        .filter_map(|t| match t {
            Token::Word(w) | Token::Quoted(w) => Some(w.clone()),
            _ => None,
        })
        .collect()
}

/// A rule's text and comment (`comment "allow ssh"`); its verdict is not followed.
fn rule_of(toks: &[Token]) -> Rule {
    let text = toks
        .iter()
        .map(|t| match t {
            Token::Word(w) => w.clone(),
            Token::Quoted(q) => format!("\"{q}\""),
            Token::Open => "{".into(),
            Token::Close => "}".into(),
            Token::End => ";".into(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let comment = toks.windows(2).find_map(|w| match w {
        [Token::Word(k), Token::Quoted(c) | Token::Word(c)] if k == "comment" => Some(c.clone()),
        _ => None,
    });
    Rule { text, comment, verdict: None }
}

/// `[FAMILY] NAME` (family `ip` when left out).
fn family_and_name(rest: &[&str]) -> Option<(String, String)> {
    match rest {
        [name] => Some(("ip".into(), name.to_string())),
        [family, name] if FAMILIES.contains(family) => Some((family.to_string(), name.to_string())),
        _ => None,
    }
}

/// `[FAMILY] TABLE CHAIN ...`.
fn family_table_chain(rest: &[&str]) -> Option<(String, String, String)> {
    match rest {
        [family, table, chain, ..] if FAMILIES.contains(family) => {
            Some((family.to_string(), table.to_string(), chain.to_string()))
        }
        [table, chain, ..] if !FAMILIES.contains(table) => Some(("ip".into(), table.to_string(), chain.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = r#"#!/usr/sbin/nft -f
flush ruleset
define LAN = 10.0.0.0/8
table inet fw {
    set blocked { type ipv4_addr; elements = { 192.0.2.1,
        192.0.2.2 } }
    chain input {
        type filter hook input priority 0; policy drop;
        iif lo accept
        tcp dport { 22,
                    80 } accept comment "allow ssh and web"
        ip saddr @blocked drop # a comment
    }
    chain users { counter; return }
}
table ip nat {
    chain post { type nat hook postrouting priority 100; policy accept; oif "wan" masquerade; }
}
add table ip6 t6
add chain ip6 t6 c { type filter hook forward priority 0 ; policy accept ; }
add rule ip6 t6 c meta l4proto ipv6-icmp \
    accept
insert rule ip6 t6 c counter
"#;

    fn chain<'a>(s: &'a Script, family: &str, table: &str, chain: &str) -> &'a Chain {
        let set = s.rulesets.iter().find(|r| r.family == family).unwrap();
        set.table(table).unwrap().chain(chain).unwrap()
    }

    #[test]
    fn reads_tables_chains_types_rules_and_comments() {
        let s = parse(SCRIPT);
        assert!(!s.opaque);
        assert!(s.unread.is_empty(), "{:?}", s.unread);
        let input = chain(&s, "inet", "fw", "input");
        assert_eq!((input.kind.as_deref(), input.hook.as_deref()), (Some("filter"), Some("input")));
        assert_eq!(input.policy, Some(Verdict::Drop));
        assert_eq!(input.rules.len(), 3, "{:?}", input.rules);
        assert_eq!(input.rules[1].comment.as_deref(), Some("allow ssh and web"));
        let users = chain(&s, "inet", "fw", "users");
        assert_eq!((users.hook.as_deref(), users.rules.len()), (None, 2));
        let post = chain(&s, "ip", "nat", "post");
        assert_eq!(
            (post.kind.as_deref(), post.hook.as_deref(), post.rules.len()),
            (Some("nat"), Some("postrouting"), 1)
        );
        let c = chain(&s, "ip6", "t6", "c");
        assert_eq!((c.hook.as_deref(), c.rules.len()), (Some("forward"), 2));
    }

    #[test]
    fn what_it_does_not_follow_it_does_not_guess() {
        assert!(parse("include \"/etc/nft.d/*.nft\"\n").opaque);
        assert!(parse("table ip t {\n chain c {\n").unread.contains(&"t".to_string()));
        let s = parse("table ip t { weird thing { } }\ntable ip u { chain c { accept } }\n");
        assert_eq!(s.unread, ["t"]);
        assert_eq!(chain(&s, "ip", "u", "c").rules.len(), 1);
        assert_eq!(parse("add rule ip t c position 4 accept\n").unread, ["t"]);
        let s = parse("table ip t { chain c { accept } }\nflush ruleset\ntable ip u { }\n");
        assert_eq!(s.rulesets[0].tables.len(), 1);
        assert!(parse("delete table ip t\n").rulesets.is_empty());
    }
}
