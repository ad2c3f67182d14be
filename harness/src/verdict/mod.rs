//! The verdict: each probe's expectations held against its evidence, one module per kind of
//! expectation, named as in `scenario/expect/`: [`answer`] (`replies`, `answered_by`), [`path`]
//! (`[[probe.path]]`), [`addr`] (`[[probe.addr]]`), [`drop`] (`[[probe.drop]]`) and [`conntrack`]
//! (`[[probe.conntrack]]`).
//! Each kind is an [`ExpectationKind`] listed in [`KINDS`]: its name, the probe keys it reads,
//! the [`FailureKind`]s it reports, and how it judges a probe's evidence, its failure texts
//! beside. [`judge`] runs every kind. A failure is data ([`Failure`]), found by its kind and
//! fields ([`crate::testing::want`]); its text is for people.
//!
//! # Adding a kind of expectation
//! - `scenario/expect/KIND.rs`: its types (serde, `deny_unknown_fields`) and their key in
//!   [`ProbeSpec`], re-exported from `scenario/expect/mod.rs`; and `problems`, the validation
//!   only it knows, called from `scenario/validate/probes.rs`. Path and address entries share
//!   their conditions ([`crate::scenario::Conditions`], decided by `Conditions::applies` here).
//! - `verdict/KIND.rs`: a unit struct implementing [`ExpectationKind`], and its failure texts
//!   (pinned, with the other kinds', in `verdict/tests.rs`); its [`FailureKind`] variants, in
//!   `verdict/failure.rs`.
//! - Its line in [`KINDS`].
//! - Where `netpath record` writes it, or reports show evidence of its own:
//!   `output/record/KIND.rs`, `output/report/KIND.rs`.
//! - Tests: each new [`FailureKind`] in the list of the registry test in `verdict/tests.rs` and
//!   broken on purpose in its `broken_probes`; a case on the real kernel in `cases/tests/` and
//!   its negative twin, which finds the failure with `want(FailureKind::...)`.
//!
//! The registry tests fail while a key of [`ProbeSpec`] that states an expectation is read by
//! no kind, while a [`FailureKind`] is claimed by no kind or by two, and while a kind's judging
//! reports a kind of failure it does not claim or never reports one it claims.

pub mod addr;
pub mod answer;
pub mod conntrack;
pub mod drop;
mod failure;
pub mod path;
#[cfg(test)]
mod tests;

pub use addr::HeaderField;
pub use failure::{Failure, FailureKind};

use std::collections::BTreeMap;

use crate::evidence::Exchange;
use crate::evidence::conntrack::Entry;
use crate::firewall::Backend;
use crate::kernel::{KernelRange, KernelVersion};
use crate::scenario::{Conditions, Packets, ProbeSpec};

/// One kind of expectation: what it is called, which keys of a `[[probe]]` state it, which
/// kinds of failure it reports, and how it judges a probe's evidence. A new kind is a file in
/// `verdict/` with one of these, and a line in [`KINDS`] (see the module docs).
pub trait ExpectationKind: Sync {
    /// Its name (`path`), as its module is named in `scenario/expect/` and here.
    fn name(&self) -> &'static str;

    /// The keys of a [`ProbeSpec`] (a `[[probe]]` table) it reads (`path`, for `[[probe.path]]`).
    fn keys(&self) -> &'static [&'static str];

    /// The kinds of failure it reports; no other kind reports them.
    fn failures(&self) -> &'static [FailureKind];

    /// Whether its failures about single packets are reported before any other kind's (see
    /// [`judge`]).
    fn reported_first(&self) -> bool {
        false
    }

    /// What of `probe`'s expectations of this kind did not hold against `evidence`.
    fn judge(&self, probe: &ProbeSpec, evidence: &ProbeEvidence<'_>) -> Vec<Failure>;
}

/// Every kind of expectation, in the order their failures are reported (see [`judge`]).
pub static KINDS: &[&dyn ExpectationKind] =
    &[&answer::AnswerKind, &path::PathKind, &addr::AddrKind, &drop::DropKind, &conntrack::ConntrackKind];

/// What a probe's expectations are judged against: the run, every packet of the probe with its
/// evidence, and the conntrack tables after the run.
#[derive(Debug, Clone, Copy)]
pub struct ProbeEvidence<'a> {
    /// The backend the run used.
    pub backend: Backend,
    /// The running kernel ([`crate::kernel::running`]), for `kernel` variants.
    pub kernel: Option<KernelVersion>,
    /// Every packet of the probe, in the order they were sent.
    pub exchanges: &'a [Exchange],
    /// The conntrack entries of each netns some probe expects entries in, after the run.
    pub conntrack: &'a BTreeMap<String, Vec<Entry>>,
}

impl<'a> ProbeEvidence<'a> {
    /// The context of one of its packets, which an entry's conditions are held against.
    pub fn context(&self, exchange: &'a Exchange) -> Context<'a> {
        Context { backend: self.backend, kernel: self.kernel, exchange, exchanges: self.exchanges }
    }
}

/// Every expectation of `probe` against `evidence`, kind by kind. A probe's failures are
/// reported in this order: the answer to each packet (the kinds [`reported_first`]), then packet
/// by packet what else is about that packet, then what is about the probe as a whole (a load
/// split's counts, conntrack entries); within each, in the order of [`KINDS`].
///
/// [`reported_first`]: ExpectationKind::reported_first
pub fn judge(probe: &ProbeSpec, evidence: &ProbeEvidence<'_>) -> Vec<Failure> {
    let mut ranked: Vec<((u8, u16), Failure)> = vec![];
    for kind in KINDS {
        for f in kind.judge(probe, evidence) {
            let rank = match f.packet {
                Some(p) if kind.reported_first() => (0, p),
                Some(p) => (1, p),
                None => (2, 0),
            };
            ranked.push((rank, f));
        }
    }
    // Stable: a kind's failures keep their order, and so do kinds of the same rank.
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, f)| f).collect()
}

/// What an expectation's conditions are held against: the run, one packet of the probe, and
/// all of them (`packet` counts among the packets the other conditions select).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The backend the run used.
    pub backend: Backend,
    /// The running kernel ([`crate::kernel::running`]), for `kernel` variants.
    pub kernel: Option<KernelVersion>,
    /// The packet being judged.
    pub exchange: &'a Exchange,
    /// Every packet of the probe.
    pub exchanges: &'a [Exchange],
}

impl Conditions<'_> {
    /// Whether an entry with these conditions is about the packet and run of `ctx`: its
    /// packets, the endpoint that answered, its backend and kernel variant. Every condition a
    /// path or address entry can have is decided here.
    pub fn applies(&self, ctx: &Context<'_>) -> bool {
        self.backend.is_none_or(|b| b == ctx.backend)
            && KernelRange::applies(self.kernel, ctx.kernel)
            && selects(self.packet, self.answered_by, ctx)
    }
}

/// Whether the packet of `ctx` is one that `packet` and `answered_by` select. `packet` counts
/// among the packets answered by `answered_by` where it is given (`packet = 1` with
/// `answered_by = "ep1"`: the first connection ep1 answered), else among all of them.
fn selects(packet: Option<Packets>, answered_by: Option<&str>, ctx: &Context<'_>) -> bool {
    let ex = ctx.exchange;
    let Some(server) = answered_by else { return packet.is_none_or(|p| p.contains(ex.packet)) };
    if ex.answer.as_deref() != Some(server) {
        return false;
    }
    let before = ctx.exchanges.iter().take_while(|x| x.packet != ex.packet);
    let nth = before.filter(|x| x.answer.as_deref() == Some(server)).count() + 1;
    packet.is_none_or(|p| u16::try_from(nth).is_ok_and(|n| p.contains(n)))
}

/// `, answered by ep1` for an entry with that condition: failures say which class they are of.
pub(crate) fn condition_text(answered_by: Option<&str>) -> String {
    answered_by.map(|a| format!(", answered by {a}")).unwrap_or_default()
}

/// The names this module held before each kind of expectation had its own module, for code
/// written against them: new code names them from [`crate::verdict`] (or [`crate::Failure`],
/// [`crate::FailureKind`]).
pub mod expect {
    pub use super::addr::{HeaderField, oriented, port_holds, reference_ports};
    pub use super::path::{diff, first_missing_in_order};
    pub use super::{Context, Failure, FailureKind};
}
