//! The hops of one probe packet in the order it met them: the capture points that saw it (with
//! the addresses it carried there) and the netfilter hooks it passed (with their verdict and
//! rule), interleaved across namespaces, and the kernel's drop of it last. The text report and
//! the HTML report draw the same journey from this model.
//!
//! Trace sources and captures keep different clocks (an nf_tables event is stamped when it is
//! read), so hooks are not ordered by time against the captures: each hook is placed after the
//! capture of the interface it came in on (`IN=`, `PHYSIN=`) in its netns, and hooks of one
//! netns keep the order the kernel reported them in. Captures share one clock and are ordered
//! by it.

use std::fmt;
use std::time::Duration;

use crate::evidence::packet::PacketInfo;
use crate::evidence::{Exchange, PacketEvidence};
use crate::observe::kfree_skb::KernelDrop;
use crate::observe::trace::{Hook, TraceEvent};
use crate::scenario::CapturePoint;

/// One hop of a packet's journey.
#[derive(Debug, Clone, PartialEq)]
pub enum Hop {
    /// Capture points saw it.
    Seen(Sighting),
    /// It met a netfilter hook (the trace event, with its verdict and rule where known).
    Hook(TraceEvent),
    /// The kernel dropped it (see [`drop_line`]).
    Dropped(KernelDrop),
}

/// Where captures saw the packet, and what it carried there.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    /// The capture points that saw it with the same headers one after the other: the two ends
    /// of a veth (nothing between), a bridge port and its bridge (`host/veth0594f4b`,
    /// `host/docker0`, only that netns's hooks between); the first first.
    pub points: Vec<CapturePoint>,
    /// Which sighting at the first point this is (1: the first; a hairpinned packet passes a
    /// veth twice).
    pub sighting: u16,
    /// When the first point captured it, on the capture clock (`None` where not recorded).
    pub at: Option<Duration>,
    /// What it carried there.
    pub packet: PacketInfo,
    /// The addresses or ports that differ from the previous sighting, and what rewrote them.
    pub rewrites: Vec<Rewrite>,
}

impl Sighting {
    /// `host/veth0594f4b`, `host/veth0594f4b+docker0` for a bridge port and its bridge,
    /// `c1/eth0+host/veth0594f4b` for the two ends of a veth.
    pub fn name(&self) -> String {
        let mut out = self.points[0].to_string();
        for (before, p) in self.points.iter().zip(&self.points[1..]) {
            if p.netns == before.netns {
                out.push('+');
                out.push_str(&p.iface);
            } else {
                out.push_str(&format!("+{p}"));
            }
        }
        if self.sighting > 1 {
            out.push_str(&format!(" #{}", self.sighting));
        }
        out
    }
}

/// Which side of a packet a rewrite changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The source address or port: SNAT, MASQUERADE.
    Source,
    /// The destination address or port: DNAT, REDIRECT.
    Destination,
}

/// An address (or port) rewritten between two sightings.
#[derive(Debug, Clone, PartialEq)]
pub struct Rewrite {
    /// Which side changed.
    pub side: Side,
    /// The endpoint before (`192.168.0.2`, `10.0.0.5:40000`).
    pub from: String,
    /// The endpoint after.
    pub to: String,
    /// The NAT rule the trace shows doing it (`nat:POSTROUTING:rule:1` and its target,
    /// `MASQUERADE`); `None` where no traced rule did (conntrack applies a connection's NAT to
    /// its later packets and undoes it on replies without a rule).
    pub by: Option<(Hook, String)>,
}

impl fmt::Display for Rewrite {
    /// `SNAT by nat:POSTROUTING:rule:1 MASQUERADE`, `DNAT by conntrack`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.side {
            Side::Source => "SNAT",
            Side::Destination => "DNAT",
        };
        match &self.by {
            Some((hook, target)) if target.is_empty() => write!(f, "{kind} by {hook}"),
            Some((hook, target)) => write!(f, "{kind} by {hook} {target}"),
            None => write!(f, "{kind} by conntrack"),
        }
    }
}

impl Hop {
    /// A hook whose rule only feeds netpath's trace (an iptables `TRACE` target, the ebtables
    /// `nflog` watcher) and decides nothing: reports leave it out.
    pub fn is_tracing(&self) -> bool {
        let Hop::Hook(ev) = self else { return false };
        let Some(rule) = &ev.rule else { return false };
        let deciding = ev.verdict.as_ref().is_some_and(|v| !matches!(v, crate::observe::trace::Verdict::Continue));
        let tracing = rule.text.contains("-j TRACE")
            || rule.text.contains("xt watcher \"nflog\"")
            || rule.text.contains("--nflog-group");
        tracing && !deciding
    }

    /// What classes of packets compare: the hop without what differs from one connection of
    /// a class to the next (ports, times, IPv4 ids, MAC addresses a kernel chose).
    fn shape(&self) -> String {
        match self {
            // What was rewritten shows in the addresses; which sighting first shows it depends
            // on which capture points saw the packet (a flood reaches a bridge device once).
            Hop::Seen(s) => format!("seen {} {}", s.name(), addresses(&s.packet)),
            Hop::Hook(ev) => {
                let v = ev.verdict.as_ref().map(ToString::to_string).unwrap_or_default();
                format!("hook {} {} = {v}", ev.netns, ev.hook)
            }
            Hop::Dropped(d) => format!("drop {} {} {:?}", d.netns, d.function(), d.reason),
        }
    }
}

/// `10.0.0.1 > 10.0.0.2`: what a class compares of a packet's addresses (not its ports).
fn addresses(p: &PacketInfo) -> String {
    let ip = |a: Option<std::net::IpAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    format!("{} > {}", ip(p.src), ip(p.dst))
}

/// A packet's hops in the order it met them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Journey {
    /// The hops, first first; a kernel drop last.
    pub hops: Vec<Hop>,
}

/// A capture of the packet, before merging: when, where, which sighting there.
struct Capture<'a> {
    at: Option<Duration>,
    point: &'a CapturePoint,
    sighting: u16,
    packet: &'a PacketInfo,
}

impl Journey {
    /// The journey of one packet's evidence (a request, a reply, or a retransmission).
    pub fn of(pe: &PacketEvidence) -> Journey {
        let captures = captures(pe);
        // Each hook goes into a gap between captures: gap g is before capture g (gap n: after
        // the last one).
        let mut slotted: Vec<(usize, usize, &TraceEvent)> = vec![];
        let mut order = 0;
        for (netns, events) in &pe.path {
            let mut prev: Option<usize> = None;
            // Per interface, the capture of the packet's way out through it: a later way in
            // through the same interface (a bridge floods it back, a hairpin) is a later capture.
            let mut left: std::collections::HashMap<&str, usize> = Default::default();
            for (k, ev) in events.iter().enumerate() {
                let floor = prev.unwrap_or(0);
                let ingress = |dev: &str| {
                    // On loopback the one capture of the frame going out is its way in as well.
                    let after = left.get(dev).map_or(0, |e| if dev == "lo" { *e } else { e + 1 });
                    captures
                        .iter()
                        .enumerate()
                        .find(|(i, c)| i + 1 >= floor && *i >= after && c.point.netns == *netns && c.point.iface == dev)
                        .map(|(i, _)| i + 1)
                };
                let after_ingress = match bridge_port(&events[k..], ev) {
                    // br_netfilter runs the IP hooks inside the bridge, before the bridge device
                    // (and its capture) gets the frame: they follow the port's capture.
                    Some(port) => ingress(port),
                    None => {
                        [&ev.ifaces.indev, &ev.ifaces.physindev].into_iter().flatten().filter_map(|d| ingress(d)).max()
                    }
                };
                let gap = match (after_ingress, prev) {
                    (Some(g), _) => g.max(floor),
                    (None, Some(p)) => p,
                    // A netns's first hook with no ingress capture (sent from there, or no
                    // capture on its way in): before its way out, else after the netns's
                    // last capture, else at the end.
                    (None, None) => before_egress(&captures, netns, events[k..].iter())
                        .or_else(|| captures.iter().rposition(|c| c.point.netns == *netns).map(|i| i + 1))
                        .unwrap_or(captures.len()),
                };
                if let Some(out) = ev.ifaces.outdev.as_deref().or(ev.ifaces.physoutdev.as_deref())
                    && let Some(e) = captures
                        .iter()
                        .enumerate()
                        .position(|(i, c)| i >= gap && c.point.netns == *netns && c.point.iface == out)
                {
                    left.insert(out, e);
                }
                prev = Some(gap);
                slotted.push((gap, order, ev));
                order += 1;
            }
        }
        slotted.sort_by_key(|(gap, order, _)| (*gap, *order));

        let mut hops: Vec<Hop> = vec![];
        let mut hooks = slotted.into_iter().peekable();
        for (i, c) in captures.iter().enumerate() {
            while let Some((_, _, ev)) = hooks.next_if(|(g, _, _)| *g <= i) {
                hops.push(Hop::Hook(ev.clone()));
            }
            push_sighting(&mut hops, c);
        }
        hops.extend(hooks.map(|(_, _, ev)| Hop::Hook(ev.clone())));
        mark_rewrites(&mut hops);
        hops.extend(pe.drops.iter().cloned().map(Hop::Dropped));
        Journey { hops }
    }

    /// The sightings, in order.
    pub fn sightings(&self) -> impl Iterator<Item = &Sighting> {
        self.hops.iter().filter_map(|h| match h {
            Hop::Seen(s) => Some(s),
            _ => None,
        })
    }

    /// Every rewrite with the sighting that first showed it.
    pub fn rewrites(&self) -> impl Iterator<Item = (&Sighting, &Rewrite)> {
        self.sightings().flat_map(|s| s.rewrites.iter().map(move |r| (s, r)))
    }

    /// The kernel's drops of it.
    pub fn drops(&self) -> impl Iterator<Item = &KernelDrop> {
        self.hops.iter().filter_map(|h| match h {
            Hop::Dropped(d) => Some(d),
            _ => None,
        })
    }

    /// Whether nothing saw it: no capture, no hook, no drop.
    pub fn is_empty(&self) -> bool {
        self.hops.is_empty()
    }

    /// Its hops as they compare, in the order shown (see [`Hop::shape`]).
    pub fn shape(&self) -> Vec<String> {
        self.hops.iter().filter(|h| !h.is_tracing()).map(Hop::shape).collect()
    }

    /// What packets of one class share (see [`classes`]): each netns's hooks in the order the
    /// kernel reported them, each capture point's sightings with the addresses there, and the
    /// drops. Not the order of the sightings: the two ends of a veth, or a switch port and the
    /// node behind it, are captured by different readers whose timestamps can come either way
    /// round for the same packet (k8s-service's replies printed four paths that were one).
    /// A packet that passes a point twice (a hairpin) counts there twice.
    pub fn class_key(&self) -> Vec<String> {
        let mut hooks: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        let mut seen: Vec<String> = vec![];
        let mut times: std::collections::HashMap<&CapturePoint, u16> = Default::default();
        let mut drops: Vec<String> = vec![];
        for h in self.hops.iter().filter(|h| !h.is_tracing()) {
            match h {
                Hop::Seen(s) => {
                    for p in &s.points {
                        let n = times.entry(p).or_default();
                        *n += 1;
                        seen.push(format!("seen {p} #{n} {}", addresses(&s.packet)));
                    }
                }
                Hop::Hook(ev) => hooks.entry(ev.netns.as_str()).or_default().push(h.shape()),
                Hop::Dropped(_) => drops.push(h.shape()),
            }
        }
        seen.sort();
        hooks.into_values().flatten().chain(seen).chain(drops).collect()
    }
}

/// The bridge port `ev` (an IP hook) came in on while it is still inside the bridge: an IP
/// hook with a bridge `INPUT` or `FORWARD` hook after it in `rest` (`ev` first) was met before
/// the bridge passed the frame up to its device or on to a port, and that hook names the port.
fn bridge_port<'a>(rest: &'a [TraceEvent], ev: &TraceEvent) -> Option<&'a str> {
    if matches!(ev.hook, Hook::Eb { .. }) {
        return None;
    }
    let at = rest
        .iter()
        .position(|e| matches!(&e.hook, Hook::Eb { chain, .. } if chain == "INPUT" || chain == "FORWARD"))?;
    // Only the hooks of the same frame's way in: no hook between leaves the netns.
    rest[..at].iter().all(|e| e.ifaces.outdev.is_none()).then_some(rest[at].ifaces.indev.as_deref()?)
}

/// The capture of the first hook's way out of `netns` among `events` (its `OUT=`), as a gap.
fn before_egress<'a>(
    captures: &[Capture<'_>],
    netns: &str,
    mut events: impl Iterator<Item = &'a TraceEvent>,
) -> Option<usize> {
    let out = events.find_map(|e| e.ifaces.outdev.as_ref().or(e.ifaces.physoutdev.as_ref()))?;
    captures.iter().position(|c| c.point.netns == netns && c.point.iface == *out)
}

/// Every capture of the packet, ordered by the capture clock (those without a time last, by
/// name).
fn captures(pe: &PacketEvidence) -> Vec<Capture<'_>> {
    let mut out: Vec<Capture<'_>> = vec![];
    for (point, info) in &pe.seen {
        out.push(Capture { at: pe.first_seen.get(point).copied(), point, sighting: 1, packet: info });
        let times = pe.again_seen.get(point);
        for (k, info) in pe.again.get(point).into_iter().flatten().enumerate() {
            let at = times.and_then(|t| t.get(k)).copied();
            out.push(Capture { at, point, sighting: k as u16 + 2, packet: info });
        }
    }
    out.sort_by(|a, b| {
        let key = |c: &Capture<'_>| (c.at.unwrap_or(Duration::MAX), c.point.clone(), c.sighting);
        key(a).cmp(&key(b))
    });
    // Two ends of a veth can be stamped in the same microsecond: of captures stamped alike, the
    // one in the netns the packet was last seen in comes first (it sent the packet on), not the
    // one whose name sorts first (the README's router printed `b/eth0+router/to-b` for a packet
    // the router sent to b, now and then).
    let mut k = 1;
    while k < out.len() {
        let prev = out[k - 1].point;
        let tied = (k..out.len()).take_while(|&m| out[m].at == out[k].at).last().unwrap_or(k);
        if out[k].point.netns != prev.netns
            && let Some(m) = (k..=tied).find(|&m| out[m].point.netns == prev.netns)
        {
            out[k..=m].rotate_right(1);
        }
        k += 1;
    }
    out
}

/// Add a capture: into the previous sighting where it repeats it (the same headers, with
/// nothing between, or only the hooks of a bridge in its netns: a veth's two ends, a bridge
/// port and its bridge), else as a new hop.
fn push_sighting(hops: &mut Vec<Hop>, c: &Capture<'_>) {
    let last_seen = hops.iter().rposition(|h| matches!(h, Hop::Seen(_)));
    if let Some(i) = last_seen {
        // Between two sightings with the same headers, MACs and TTL included, only this netns's
        // bridge hooks and the IP hooks br_netfilter runs on the way in: nothing routed or
        // rewrote it (a FORWARD hook between, bridged from port to port, keeps both rows).
        let bridged = hops[i + 1..].iter().all(|h| {
            matches!(h, Hop::Hook(ev) if ev.netns == c.point.netns
                && (matches!(ev.hook, Hook::Eb { .. }) || matches!(ev.hook.chain(), "PREROUTING" | "INPUT")))
        });
        let nothing = i + 1 == hops.len();
        if let Hop::Seen(s) = &mut hops[i]
            && bridged
            && (nothing || s.points.last().is_some_and(|p| p.netns == c.point.netns))
            && c.sighting == s.sighting
            && s.packet == *c.packet
        {
            s.points.push(c.point.clone());
            return;
        }
    }
    hops.push(Hop::Seen(Sighting {
        points: vec![c.point.clone()],
        sighting: c.sighting,
        at: c.at,
        packet: c.packet.clone(),
        rewrites: vec![],
    }));
}

/// Mark on each sighting what changed since the previous one, with the NAT rule among the
/// hooks between them that did it.
fn mark_rewrites(hops: &mut [Hop]) {
    let mut prev: Option<usize> = None;
    for i in 0..hops.len() {
        let Hop::Seen(now) = &hops[i] else { continue };
        let Some(p) = prev.replace(i) else { continue };
        let Hop::Seen(before) = &hops[p] else { continue };
        let (b, n) = (&before.packet, &now.packet);
        let (bs, bd) = b.endpoints();
        let (ns, nd) = n.endpoints();
        let between = &hops[p + 1..i];
        // A rule met after this sighting, before the next one: a capture the hooks could not be
        // placed around exactly (a bridge device's, with no bridge hook to say when), rather
        // than a rewrite no rule made.
        let next = hops[i + 1..].iter().position(|h| matches!(h, Hop::Seen(_))).map_or(hops.len(), |k| i + 1 + k);
        let after = &hops[i + 1..next];
        let nat = |side| nat_rule(between, side).or_else(|| nat_rule(after, side));
        let mut rewrites = vec![];
        let (bp, np) = (b.ports(), n.ports());
        if b.src != n.src || bp.0 != np.0 {
            rewrites.push(Rewrite { side: Side::Source, from: bs, to: ns, by: nat(Side::Source) });
        }
        if b.dst != n.dst || bp.1 != np.1 {
            rewrites.push(Rewrite { side: Side::Destination, from: bd, to: nd, by: nat(Side::Destination) });
        }
        if let Hop::Seen(now) = &mut hops[i] {
            now.rewrites = rewrites;
        }
    }
}

/// The last traced rule among `hops` whose target rewrites `side`, and that target as the
/// rule says it (`MASQUERADE`, `DNAT --to-destination 10.0.2.7:8080`, nft's `masquerade`).
fn nat_rule(hops: &[Hop], side: Side) -> Option<(Hook, String)> {
    hops.iter().rev().find_map(|h| {
        let Hop::Hook(ev) = h else { return None };
        let rule = ev.rule.as_ref()?;
        let target = nat_target(&rule.text)?;
        let word = target.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let fits = match side {
            Side::Source => matches!(word.as_str(), "MASQUERADE" | "SNAT" | "NETMAP"),
            Side::Destination => matches!(word.as_str(), "DNAT" | "REDIRECT" | "NETMAP"),
        };
        fits.then(|| (ev.hook.clone(), target))
    })
}

/// The NAT target of a rule's text: iptables' `-j TARGET options`, or nft's statement from its
/// keyword on. `None` for a rule that does no NAT.
fn nat_target(text: &str) -> Option<String> {
    if let Some((_, jump)) = text.split_once(" -j ") {
        let word = jump.split_whitespace().next()?;
        return matches!(word, "MASQUERADE" | "SNAT" | "DNAT" | "REDIRECT" | "NETMAP").then(|| jump.trim().to_string());
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words.iter().position(|w| matches!(*w, "masquerade" | "snat" | "dnat" | "redirect"))?;
    // nft lists `comment "..."` last; it is not part of the statement.
    let end = words[at..].iter().position(|w| *w == "comment").map_or(words.len(), |e| at + e);
    Some(words[at..end].join(" "))
}

/// One packet of a probe's flow: its request's, reply's and each retransmission's journey.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExchangeHops {
    /// The packet's 1-based position in the flow.
    pub packet: u16,
    /// The request as first sent.
    pub request: Journey,
    /// Its reply (or refusal's) journey; empty where none was seen.
    pub reply: Journey,
    /// Each time the request was sent again.
    pub retransmissions: Vec<Journey>,
    /// Each time the reply was sent again (a retransmitted SYN-ACK).
    pub reply_retransmissions: Vec<Journey>,
}

impl ExchangeHops {
    /// The journeys of one exchange's evidence.
    pub fn of(ex: &Exchange) -> ExchangeHops {
        ExchangeHops {
            packet: ex.packet,
            request: Journey::of(&ex.request),
            reply: Journey::of(&ex.reply),
            retransmissions: ex.retransmissions.iter().map(Journey::of).collect(),
            reply_retransmissions: ex.reply_retransmissions.iter().map(Journey::of).collect(),
        }
    }
}

/// Exchanges grouped into classes, each the exchanges whose request and reply took the same
/// hops with the same addresses (ports, times and kernel-chosen values aside), in the order of
/// their first exchange. Returns indexes into `exchanges`.
pub fn classes(exchanges: &[ExchangeHops]) -> Vec<Vec<usize>> {
    let keys: Vec<_> = exchanges
        .iter()
        .map(|x| {
            (
                x.request.class_key(),
                x.reply.class_key(),
                x.retransmissions.is_empty(),
                x.reply_retransmissions.is_empty(),
            )
        })
        .collect();
    let mut out: Vec<Vec<usize>> = vec![];
    for (i, k) in keys.iter().enumerate() {
        match out.iter_mut().find(|c| keys[c[0]] == *k) {
            Some(c) => c.push(i),
            None => out.push(vec![i]),
        }
    }
    out
}

/// `dropped in router at ip_error (IP_INADDRERRORS: forwarding is off on to-a)`: the drop with
/// the kernel's reason and what it means in one line, where this drop's function and device
/// say more than the reason alone.
pub fn drop_line(d: &KernelDrop) -> String {
    let by = d.by.as_ref().map(|h| format!(" by {h}")).unwrap_or_default();
    let why = match (d.reason.as_deref(), d.function(), d.device.as_deref()) {
        // ip_route_input_slow routes it to ip_error with EHOSTUNREACH exactly when the device
        // it came in on does not forward.
        (Some(r @ "IP_INADDRERRORS"), "ip_error", Some(dev)) => format!(" ({r}: forwarding is off on {dev})"),
        (Some(r), _, _) => match crate::observe::kfree_skb::reasons::explain(r) {
            Some(e) => format!(" ({r}: {e})"),
            None => format!(" ({r})"),
        },
        (None, _, _) => " (this kernel gives no reason)".into(),
    };
    let on = match (d.device.as_deref(), d.reason.as_deref(), d.function()) {
        (Some(_), Some("IP_INADDRERRORS"), "ip_error") | (None, _, _) => String::new(),
        (Some(dev), _, _) => format!(" on {dev}"),
    };
    format!("dropped in {}{on} at {}{by}{why}", d.netns, d.function())
}

#[cfg(test)]
#[path = "hops_tests.rs"]
mod tests;
