//! The answers to a probe's packets: `answer` (what kind of answer each packet gets: a reply, a
//! refusal, a local drop, or none), its older spelling `replies`, and `answered_by` (which
//! server netns answered how many: a load split), all keys of the probe itself.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::scenario::validate::Problems;
use crate::scenario::{ProbeSpec, Scenario};

/// What kind of answer a probe's packet gets: what `answer = "..."` expects and what the
/// evidence says came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// The answer the probe asks for reached its sender: an echo reply, a server's datagram, a
    /// SYN-ACK.
    Reply,
    /// Something on the way said no: a TCP RST, or an ICMP / ICMPv6 destination unreachable of
    /// any code (port unreachable, administratively prohibited...) quoting the packet. What a
    /// REJECT rule, or a host with nothing listening, sends.
    Refused,
    /// The sender's own kernel would not send it: the send failed with EPERM (an OUTPUT rule
    /// dropped it) or ENOKEY (a WireGuard device has no peer for the destination).
    Dropped,
    /// Nothing came back within the timeout: dropped on its way, or its answer was.
    None,
}

impl Answer {
    /// Every kind, as `answer =` spells them.
    pub const ALL: [Answer; 4] = [Answer::Reply, Answer::Refused, Answer::Dropped, Answer::None];

    /// What `replies = true` / `replies = false` mean.
    pub fn of_replies(replies: bool) -> Answer {
        if replies { Answer::Reply } else { Answer::None }
    }

    /// How `answer =` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Reply => "reply",
            Answer::Refused => "refused",
            Answer::Dropped => "dropped",
            Answer::None => "none",
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ProbeSpec {
    /// The answer each packet of the probe must get: `answer`, else what `replies` says, else a
    /// reply (validation makes sure the two agree when both are given).
    pub fn expected_answer(&self) -> Answer {
        self.answer.or(self.replies.map(Answer::of_replies)).unwrap_or(Answer::Reply)
    }
}

/// What is wrong with the answers probe `p` (`probe[i]`) of `sc` expects: `replies` saying
/// otherwise than `answer`, an endpoint without a server, a server expected to answer packets
/// that must get no reply.
pub(in crate::scenario) fn problems(sc: &Scenario, i: usize, p: &ProbeSpec, ps: &mut Problems) {
    if let (Some(answer), Some(replies)) = (p.answer, p.replies)
        && Answer::of_replies(replies) != answer
    {
        ps.add(
            format!("probe[{i}].answer"),
            format!(
                "answer = \"{answer}\" contradicts replies = {replies} (which means answer = \"{}\"): keep one of them",
                Answer::of_replies(replies)
            ),
        );
    }
    for server in p.answered_by.keys() {
        if !sc.server.iter().any(|s| &s.netns == server) {
            ps.add(format!("probe[{i}].answered_by.{server}"), format!("no [[server]] runs in netns `{server}`"));
        }
    }
    if !p.answered_by.is_empty() && p.expected_answer() != Answer::Reply {
        ps.add(
            format!("probe[{i}].answered_by"),
            format!(
                "answered_by counts replies, and the probe expects answer = \"{}\": drop one of them",
                p.expected_answer()
            ),
        );
    }
}
