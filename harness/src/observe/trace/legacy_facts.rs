//! Verdicts for legacy TRACE events (NFLOG, kernel log), which name a position only: the
//! rule's target or the chain's policy in the netns's live x_tables ruleset, read back once
//! the probes ran (after the setup and the steps wrote it).

use crate::error::Result;
use crate::evidence::TimedEvent;
use crate::firewall::{Backend, Family};
use crate::lab::netns::Netns;
use crate::observe::trace::{ChainFacts, Hook, TraceEvent};
use crate::ruleset::{HookFacts, Ruleset, iptables};

/// How far back a user chain's event looks for the base chain it runs in: a packet's events
/// in one hook stand together, other packets' may come between.
const LOOKBACK: usize = 64;

/// Gives each iptables event of `events` (from netns `ns`) its verdict, rule and chain from
/// `iptables-legacy-save` (and `ip6tables-legacy-save` where an event is IPv6).
pub fn attach(ns: &Netns, events: &mut [TimedEvent]) -> Result<()> {
    let is_v6 = |e: &TraceEvent| e.packet.src.is_some_and(|a| a.is_ipv6());
    if !events.iter().any(|e| matches!(e.event.hook, Hook::Xt { .. })) {
        return Ok(());
    }
    let read = |family: Family| -> Result<Ruleset> {
        let save = Backend::Legacy.iptables(family).save(ns)?;
        Ok(iptables::parse(&save, if family == Family::V6 { "ip6" } else { "ip" }))
    };
    let v4 = read(Family::V4)?;
    let v6 = if events.iter().any(|e| is_v6(&e.event)) { Some(read(Family::V6)?) } else { None };
    for e in events.iter_mut() {
        let set = if is_v6(&e.event) { v6.as_ref().unwrap_or(&v4) } else { &v4 };
        let HookFacts { verdict, rule, chain } = set.facts(&e.event.hook);
        (e.event.verdict, e.event.rule, e.event.chain) = (verdict, rule, chain);
    }
    inherit_base_hooks(events);
    Ok(())
}

/// A user chain runs inside the base chain that jumped to it: it takes that chain's hook
/// (`nat:DOCKER` inside `nat:PREROUTING` is at hook prerouting).
fn inherit_base_hooks(events: &mut [TimedEvent]) {
    for i in 0..events.len() {
        let e = &events[i].event;
        let Some(c) = e.chain.as_ref().filter(|c| c.hook.is_none()) else { continue };
        let table = e.hook.table();
        let base: Option<ChainFacts> = events[i.saturating_sub(LOOKBACK)..i]
            .iter()
            .rev()
            .map(|b| &b.event)
            .filter(|b| b.hook.table() == table && b.packet == e.packet)
            .find_map(|b| b.chain.clone().filter(|b| b.hook.is_some() && b.family == c.family));
        if let Some(b) = base {
            events[i].event.chain.as_mut().expect("checked above").hook = b.hook;
        }
    }
}
