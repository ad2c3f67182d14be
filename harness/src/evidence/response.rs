//! What answered each probe packet, with the captures' word on it: the kind of answer the
//! sender heard ([`crate::probe::Heard`]), who sent it, the capture point that saw it first and
//! how long after the request that was. A failure about an answer names all of them ("refused
//! by a TCP RST from 203.0.113.1 seen at wan/eth0 0.14 ms after the request").

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::probe::Heard;
use crate::scenario::{Answer, CapturePoint};

/// The answer one probe packet got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Response {
    /// What kind of answer reached the sender (the sender's socket decides: an answer the
    /// captures saw that did not reach it in time is not one).
    pub kind: Answer,
    /// Who sent it: the source of the reply or the refusal where it was first captured, else
    /// what the sender's socket says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<IpAddr>,
    /// The capture point that saw it first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<CapturePoint>,
    /// How long after the request it came: between the request's first capture and the
    /// answer's first, or where nothing captured them, between the send and the socket's news.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ms")]
    pub after: Option<Duration>,
    /// How, in words: `TCP RST`, `ICMP port unreachable (code 3)`, `sendto: EPERM ...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub how: Option<String>,
    /// A reply that reached the sender only after its deadline (`kind` is then none): how long
    /// after the send, by the sender's socket.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ms")]
    pub late: Option<Duration>,
    /// How long after the send the sender's socket had its answer, late or not: what a timeout
    /// must cover (a wait for the next hop's neighbour entry included, which the captures'
    /// `after` does not see).
    #[serde(skip)]
    pub sender_after: Option<Duration>,
    /// The neighbour resolution that held a late-answered packet up, where the captures show
    /// one ([`super::neighbour::holding_up`]).
    #[serde(skip)]
    pub held_up: Option<super::neighbour::Resolution>,
}

fn ms<S: serde::Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(d) => s.serialize_f64(d.as_secs_f64() * 1000.0),
        None => s.serialize_none(),
    }
}

impl Default for Response {
    fn default() -> Response {
        Response::heard(&Heard::nothing())
    }
}

/// One capture of an answer: when, where, from whom, and how (for a refusal).
#[derive(Debug, Clone)]
pub(super) struct Caught {
    pub ts: Duration,
    pub at: CapturePoint,
    pub from: Option<IpAddr>,
    pub how: Option<String>,
}

impl Response {
    /// An answer of `kind` and nothing more known of it.
    pub fn of_kind(kind: Answer) -> Response {
        Response { kind, from: None, at: None, after: None, how: None, late: None, sender_after: None, held_up: None }
    }

    /// What the sender's socket alone says.
    pub fn heard(h: &Heard) -> Response {
        let late = h.late.map(|l| l.after);
        Response {
            kind: h.kind,
            from: h.from,
            at: None,
            after: h.after,
            how: h.how.clone(),
            late,
            sender_after: late.or(h.after),
            held_up: None,
        }
    }

    /// What the socket says, with the captures' first sighting of the answer of that kind
    /// (`caught`) and of the request (`request_ts`) where there are.
    pub(super) fn of(h: &Heard, request_ts: Option<Duration>, caught: Option<&Caught>) -> Response {
        let mut r = Response::heard(h);
        if let Some(c) = caught.filter(|_| matches!(h.kind, Answer::Reply | Answer::Refused)) {
            r.from = c.from.or(r.from);
            r.at = Some(c.at.clone());
            if let Some(sent) = request_ts {
                r.after = Some(c.ts.saturating_sub(sent));
            }
            if c.how.is_some() {
                r.how = c.how.clone();
            }
        }
        r
    }
}

/// `0.14 ms`, `1.2 s`.
pub fn latency(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 { format!("{:.2} s", ms / 1000.0) } else { format!("{ms:.2} ms") }
}

impl fmt::Display for Response {
    /// `a reply from 10.0.0.2 seen at c1/eth0 0.31 ms after the request`, `refused by a TCP RST
    /// from 203.0.113.1 seen at wan/eth0 0.14 ms after the request`, `no answer`, `dropped on
    /// its way out of netns c1 (sendto: EPERM): ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Answer::None => return f.write_str("no answer"),
            Answer::Dropped => return f.write_str(self.how.as_deref().unwrap_or("dropped by the sender's own kernel")),
            Answer::Reply => f.write_str("a reply")?,
            Answer::Refused => match &self.how {
                Some(how) if how.starts_with("TCP") => write!(f, "refused by a {how}")?,
                Some(how) if how.starts_with("ICMP") => write!(f, "refused by an {how}")?,
                Some(how) => write!(f, "refused ({how})")?,
                None => f.write_str("refused")?,
            },
        }
        if let Some(from) = self.from {
            write!(f, " from {from}")?;
        }
        if let Some(at) = &self.at {
            write!(f, " seen at {at}")?;
        }
        if let Some(after) = self.after {
            write!(f, " {} after the request", latency(after))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_says_what_answered_from_where_and_how_soon() {
        let heard = Heard::refused(None, "connect: ECONNREFUSED", Duration::from_millis(3));
        let caught = Caught {
            ts: Duration::from_micros(10_140),
            at: "wan/eth0".parse().unwrap(),
            from: Some("203.0.113.1".parse().unwrap()),
            how: Some("TCP RST".into()),
        };
        let r = Response::of(&heard, Some(Duration::from_millis(10)), Some(&caught));
        assert_eq!(r.to_string(), "refused by a TCP RST from 203.0.113.1 seen at wan/eth0 0.14 ms after the request");
        // Nothing captured: the socket's word.
        assert_eq!(
            Response::of(&heard, None, None).to_string(),
            "refused (connect: ECONNREFUSED) 3.00 ms after the request"
        );
        // A refusal the captures saw does not make an unanswered packet refused.
        assert_eq!(Response::of(&Heard::nothing(), Some(Duration::ZERO), Some(&caught)).to_string(), "no answer");
        assert_eq!(Response::heard(&Heard::dropped("dropped at OUTPUT")).to_string(), "dropped at OUTPUT");
    }
}
