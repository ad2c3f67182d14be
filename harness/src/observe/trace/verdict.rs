//! What netfilter decided at a hook ([`Verdict`]), which rule decided it ([`RuleText`]) and
//! what kind of chain it was in ([`ChainFacts`]): the parts of a trace event beside its name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The verdict a rule or a chain's policy gave the packet, named as nft names them.
///
/// NAT targets (`MASQUERADE`, `SNAT`, `DNAT`, `REDIRECT`, `NETMAP`, nft's `masquerade`, `snat`,
/// `dnat`) end the chain and let the packet on: they are [`Verdict::Accept`], the rule's text
/// ([`RuleText`]) keeps which target it was. `REJECT` (and nft's `reject`) is told apart from
/// a plain drop although the kernel reports both as drop, because the answer differs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The packet goes on to the next hook.
    Accept,
    /// Dropped silently.
    Drop,
    /// Dropped with an answer (ICMP error, TCP RST).
    Reject,
    /// Into a user chain, returning here after it.
    Jump(String),
    /// Into a user chain, not returning here.
    Goto(String),
    /// Back to the calling chain (an explicit `RETURN` or the end of a user chain).
    Return,
    /// The rule matched without deciding (`LOG`, `TRACE`, `MARK`, a counter...): the next rule.
    Continue,
    /// Handed to user space (`NFQUEUE`, `QUEUE`).
    Queue,
    /// A rarer nf_tables verdict (`stolen`, `repeat`, `stop`, `break`), by its nft name.
    Other(String),
}

impl Verdict {
    /// The nft keyword and, for jump/goto, the target: `accept`, `jump DOCKER`.
    pub fn name(&self) -> &str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Reject => "reject",
            Verdict::Jump(_) => "jump",
            Verdict::Goto(_) => "goto",
            Verdict::Return => "return",
            Verdict::Continue => "continue",
            Verdict::Queue => "queue",
            Verdict::Other(n) => n,
        }
    }

    /// The verdict of a chain's policy text (`ACCEPT`/`accept`, `DROP`/`drop`); `None` for a
    /// user chain's `-`.
    pub fn of_policy(text: &str) -> Option<Verdict> {
        match text.to_ascii_lowercase().as_str() {
            "accept" => Some(Verdict::Accept),
            "drop" => Some(Verdict::Drop),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Jump(c) | Verdict::Goto(c) => write!(f, "{} {c}", self.name()),
            v => f.write_str(v.name()),
        }
    }
}

impl FromStr for Verdict {
    type Err = String;

    fn from_str(s: &str) -> Result<Verdict, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        Ok(match words.as_slice() {
            ["accept"] => Verdict::Accept,
            ["drop"] => Verdict::Drop,
            ["reject"] => Verdict::Reject,
            ["return"] => Verdict::Return,
            ["continue"] => Verdict::Continue,
            ["queue"] => Verdict::Queue,
            ["jump", chain] => Verdict::Jump(chain.to_string()),
            ["goto", chain] => Verdict::Goto(chain.to_string()),
            [w @ ("jump" | "goto")] => return Err(format!("`{w}` needs its target chain: `{w} CHAIN`")),
            [w @ ("stolen" | "repeat" | "stop" | "break")] => Verdict::Other(w.to_string()),
            _ => {
                return Err(format!(
                    "`{s}` is not a verdict (want accept, drop, reject, jump CHAIN, goto CHAIN, return, continue or queue)"
                ));
            }
        })
    }
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Verdict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The rule an event names, as its ruleset lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleText {
    /// `-A INPUT -p tcp --dport 22 -j ACCEPT`, or nft's rule text.
    pub text: String,
    /// Its comment (`-m comment --comment`, nft `comment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// No other rule of its chain has the same comment, so the comment names this rule alone
    /// (`record` then names it by its comment rather than its position).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub comment_unique: bool,
}

impl RuleText {
    /// The rule `text` with `comment`, unique in its chain when none of `others` (the
    /// chain's rules' comments, this one's included) has it twice.
    pub fn new<'a>(
        text: String,
        comment: Option<String>,
        others: impl IntoIterator<Item = Option<&'a str>>,
    ) -> RuleText {
        let comment_unique =
            comment.as_deref().is_some_and(|c| others.into_iter().filter(|o| *o == Some(c)).count() == 1);
        RuleText { text, comment, comment_unique }
    }
}

/// The chain an event is in: its family, and for a base chain its type and hook.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChainFacts {
    /// The nft family (`ip`, `ip6`, `inet`, `bridge`).
    pub family: String,
    /// The chain's type (`filter`, `nat`, `route`). An iptables chain has its table's (`nat`
    /// for every chain of table nat); a native nft user chain has the type of the base chains
    /// that jump to it when they all share one, else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The hook of a base chain (`prerouting`, `input`...), none for a user chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
}

/// The nft family name of an IP version.
pub fn ip_family(v6: bool) -> &'static str {
    if v6 { "ip6" } else { "ip" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_read_back_what_they_write() {
        for text in
            ["accept", "drop", "reject", "jump DOCKER", "goto KUBE-SEP-X", "return", "continue", "queue", "stolen"]
        {
            let v: Verdict = text.parse().unwrap();
            assert_eq!(v.to_string(), text);
        }
        assert!("jump".parse::<Verdict>().unwrap_err().contains("jump CHAIN"));
        assert!("ACCEPT".parse::<Verdict>().unwrap_err().contains("is not a verdict"));
        assert_eq!(Verdict::of_policy("DROP"), Some(Verdict::Drop));
        assert_eq!(Verdict::of_policy("-"), None);
    }
}
