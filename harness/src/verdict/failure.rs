//! What a verdict says when an expectation does not hold: a [`Failure`] of some [`FailureKind`],
//! structured fields for programs and tests, a text for people. Each kind of failure belongs to
//! one [`ExpectationKind`](super::ExpectationKind), which says so in
//! [`failures`](super::ExpectationKind::failures); the texts are written beside the judging,
//! in the kind's module.

use std::collections::BTreeMap;

use super::addr::HeaderField;
use crate::observe::trace::Hook;
use crate::scenario::{CapturePoint, Direction};

/// What kind of expectation a [`Failure`] is about. Tests match on it and on the failure's
/// structured fields, never on its text, so the text can be reworded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The probe expects a reply (the default) and none reached its sender: nothing, a refusal,
    /// or its own kernel dropped it (`observed` says which).
    NoReply,
    /// The probe expects no reply (`replies = false`, or `answer` other than `"reply"`) and a
    /// reply reached the sender.
    UnexpectedReply,
    /// `answer`: neither the expected nor the observed answer is a reply, and they differ (a
    /// refusal where none may come, nothing where a REJECT should refuse...).
    WrongAnswer,
    /// `exact`: the path in a netns is not the one listed.
    PathExact,
    /// `includes`: a listed hook is not on the path, in order.
    PathIncludes,
    /// `last`: the path ends at another hook.
    PathLast,
    /// `never`: the path met a hook the pattern forbids.
    PathNever,
    /// An address expectation: the packet was seen at the capture point with another header.
    Header,
    /// An address expectation: the packet was not seen at the capture point.
    NotSeen,
    /// `absent = true`: the packet was seen where it must not be.
    Seen,
    /// `answered_by`: fewer connections than required were answered by that endpoint.
    Answers,
    /// A conntrack entry the probe expects is not in the netns's table.
    Conntrack,
    /// `[[probe.drop]]`: the kernel reported no drop of the packet (it went through, or died
    /// where the drop source cannot see).
    NotDropped,
    /// `[[probe.drop]]`: the kernel dropped the packet, elsewhere or for another reason
    /// (`observed` says where and why).
    DroppedOtherwise,
}

impl FailureKind {
    /// The kinds of a path expectation (`exact`, `includes`, `last`, `never`).
    pub const PATH: [FailureKind; 4] =
        [FailureKind::PathExact, FailureKind::PathIncludes, FailureKind::PathLast, FailureKind::PathNever];
    /// The kinds of a drop expectation (`[[probe.drop]]`).
    pub const DROP: [FailureKind; 2] = [FailureKind::NotDropped, FailureKind::DroppedOtherwise];
    /// The kinds of an address expectation (`[[probe.addr]]`).
    pub const ADDRESS: [FailureKind; 3] = [FailureKind::Header, FailureKind::NotSeen, FailureKind::Seen];
}

/// One expectation that did not hold: its [`kind`](Failure::kind) and structured fields for
/// programs and tests, and a text (`what`, `detail`) for people. Which fields a kind fills is
/// said on each field; the others are empty.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Failure {
    /// What kind of expectation did not hold.
    #[serde(skip)]
    pub kind: FailureKind,
    /// What was expected, in a line (`path of packet 1 request in host (exact)`).
    pub what: String,
    /// Expected against observed.
    pub detail: String,
    /// The packet it is about, when it is about one (a report shows that packet in full).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet: Option<u16>,
    /// Request or reply: path and header kinds.
    #[serde(skip)]
    pub direction: Option<Direction>,
    /// The netns of a path or conntrack expectation; the probe's sender for `NoReply` and
    /// `UnexpectedReply`.
    #[serde(skip)]
    pub netns: Option<String>,
    /// The capture point of a header expectation (`Header`, `NotSeen`, `Seen`), as the lab
    /// named it; for the answer kinds (`NoReply`, `UnexpectedReply`, `WrongAnswer`), where the
    /// answer that came was first captured.
    #[serde(skip)]
    pub at: Option<CapturePoint>,
    /// The answer kinds: who sent the answer that came (a reply's or a refusal's source).
    #[serde(skip)]
    pub from: Option<std::net::IpAddr>,
    /// The answer kinds: how long after the request the answer that came was seen.
    #[serde(skip)]
    pub latency: Option<std::time::Duration>,
    /// The handle the scenario named `at` by (`host/peer:c1/eth0`), when it used one.
    #[serde(skip)]
    pub handle: Option<CapturePoint>,
    /// The endpoint: the expectation's `answered_by` condition, or the server of `Answers`.
    #[serde(skip)]
    pub answered_by: Option<String>,
    /// The expected side, in one line: the header (`10.0.0.1:kept > any:80`) for header kinds
    /// (`not seen` for `Seen`), the hook for `PathLast`, the pattern for `PathNever`, the
    /// minimum count for `Answers`, the drop (`IP_INADDRERRORS in router at ip_error`) for the
    /// drop kinds, the answer kind (`reply`, `refused`, `dropped`, `none`) for
    /// `NoReply`, `UnexpectedReply` and `WrongAnswer`, the entry (`tcp orig [..] reply [..]`) for `Conntrack`.
    #[serde(skip)]
    pub expected: Option<String>,
    /// The observed side, in the shape of `expected`: the header as seen (`None` for
    /// `NotSeen`), the last hook for `PathLast` (`None` without one), the count for
    /// `Answers`, the drops seen (one a line; `None` for `NotDropped`) for the drop kinds, the
    /// answer kind that came for the answer kinds, the table's entries of that protocol (one a line) for `Conntrack`.
    #[serde(skip)]
    pub observed: Option<String>,
    /// Path kinds: the hooks observed in the netns, in order.
    #[serde(skip)]
    pub hooks: Vec<Hook>,
    /// Path kinds: the expected hooks the path lacks (`exact`: the `-` lines of the diff;
    /// `includes`: the first one not found in order; `last`: the wanted last hook).
    #[serde(skip)]
    pub missing: Vec<Hook>,
    /// Path kinds: the observed hooks that should not be there (`exact`: the `+` lines;
    /// `never`: the hooks the pattern matched; `last`: the hook the path ended at).
    #[serde(skip)]
    pub unexpected: Vec<Hook>,
    /// `Header`: the fields that differ from the expectation.
    #[serde(skip)]
    pub mismatched: Vec<HeaderField>,
    /// `NoReply`: the capture points that saw the request.
    #[serde(skip)]
    pub seen_at: Vec<CapturePoint>,
    /// `NoReply`: the last hook the request met in each netns it was traced in: where it was lost.
    #[serde(skip)]
    pub last_hooks: BTreeMap<String, Hook>,
    /// Which of the probe's entries states the expectation: its key (`path`, `addr`,
    /// `conntrack`; `answer`, `replies` or `answered_by` for the answer kinds) and, for an array
    /// of tables, its index (`("path", Some(1))`: the second `[[probe.path]]`).
    #[serde(skip)]
    pub entry: Option<(&'static str, Option<usize>)>,
    /// Where that entry is written, for people: `FILE:LINE`, or for a scenario built in Rust
    /// which entry it is and that it has no file. Set by the engine once judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl Failure {
    /// A failure of `kind` with its text and every structured field empty.
    pub fn new(kind: FailureKind, what: String, detail: String) -> Failure {
        Failure {
            kind,
            what,
            detail,
            packet: None,
            direction: None,
            netns: None,
            at: None,
            from: None,
            latency: None,
            handle: None,
            answered_by: None,
            expected: None,
            observed: None,
            hooks: vec![],
            missing: vec![],
            unexpected: vec![],
            mismatched: vec![],
            seen_at: vec![],
            last_hooks: BTreeMap::new(),
            entry: None,
            location: None,
        }
    }

    /// The same failure, stated by the probe's entry `key` (`index` in its array of tables).
    pub(crate) fn by(self, key: &'static str, index: Option<usize>) -> Failure {
        Failure { entry: Some((key, index)), ..self }
    }

    pub(crate) fn of_packet(kind: FailureKind, packet: u16, what: String, detail: String) -> Failure {
        Failure { packet: Some(packet), ..Failure::new(kind, what, detail) }
    }
}
