//! Verdicts: a probe's evidence held against its path and address expectations, with failure
//! messages that show expected against observed.

use std::fmt::Write;

use crate::evidence::Exchange;
use crate::evidence::packet::{Mac, PacketInfo};
use crate::firewall::Backend;
use std::collections::BTreeMap;

use crate::evidence::conntrack::Entry;
use crate::observe::trace::Hook;
use crate::scenario::{AddrExpect, CapturePoint, Direction, Packets, PathExpect, PortExpect, ProbeSpec};

/// What kind of expectation a [`Failure`] is about. Tests match on it and on the failure's
/// structured fields, never on its text, so the text can be reworded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The probe expects a reply (the default) and none reached its sender.
    NoReply,
    /// `replies = false` and a reply reached the sender.
    UnexpectedReply,
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
}

impl FailureKind {
    /// The kinds of a path expectation (`exact`, `includes`, `last`, `never`).
    pub const PATH: [FailureKind; 4] =
        [FailureKind::PathExact, FailureKind::PathIncludes, FailureKind::PathLast, FailureKind::PathNever];
    /// The kinds of an address expectation (`[[probe.addr]]`).
    pub const ADDRESS: [FailureKind; 3] = [FailureKind::Header, FailureKind::NotSeen, FailureKind::Seen];
}

/// A header field an address expectation names ([`Failure::mismatched`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HeaderField {
    /// The source address.
    Src,
    /// The destination address.
    Dst,
    /// The source port.
    Sport,
    /// The destination port.
    Dport,
    /// The IP TTL.
    Ttl,
    /// The source MAC address.
    MacSrc,
    /// The destination MAC address.
    MacDst,
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
    /// named it.
    #[serde(skip)]
    pub at: Option<CapturePoint>,
    /// The handle the scenario named `at` by (`host/peer:c1/eth0`), when it used one.
    #[serde(skip)]
    pub handle: Option<CapturePoint>,
    /// The endpoint: the expectation's `answered_by` condition, or the server of `Answers`.
    #[serde(skip)]
    pub answered_by: Option<String>,
    /// The expected side, in one line: the header (`10.0.0.1:kept > any:80`) for header kinds
    /// (`not seen` for `Seen`), the hook for `PathLast`, the pattern for `PathNever`, the
    /// minimum count for `Answers`, the entry (`tcp orig [..] reply [..]`) for `Conntrack`.
    #[serde(skip)]
    pub expected: Option<String>,
    /// The observed side, in the shape of `expected`: the header as seen (`None` for
    /// `NotSeen`), the last hook for `PathLast` (`None` without one), the count for
    /// `Answers`, the table's entries of that protocol (one a line) for `Conntrack`.
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
        }
    }

    fn of_packet(kind: FailureKind, packet: u16, what: String, detail: String) -> Failure {
        Failure { packet: Some(packet), ..Failure::new(kind, what, detail) }
    }
}

/// What an expectation's conditions are held against: the run, one packet of the probe, and
/// all of them (`packet` counts among the packets the other conditions select).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The backend the run used.
    pub backend: Backend,
    /// The running kernel ([`crate::kernel::running`]), for `kernel` variants.
    pub kernel: Option<crate::kernel::KernelVersion>,
    /// The packet being judged.
    pub exchange: &'a Exchange,
    /// Every packet of the probe.
    pub exchanges: &'a [Exchange],
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

impl PathExpect {
    /// Whether this entry is about the packet and run of `ctx`: its packets, the endpoint that
    /// answered, its backend variant. Every condition an entry can have is decided here.
    pub fn applies(&self, ctx: &Context<'_>) -> bool {
        self.backend.is_none_or(|b| b == ctx.backend)
            && crate::kernel::KernelRange::applies(self.kernel.as_ref(), ctx.kernel)
            && selects(self.packet, self.answered_by.as_deref(), ctx)
    }
}

impl AddrExpect {
    /// Whether this entry is about the packet and run of `ctx` (see [`PathExpect::applies`]).
    pub fn applies(&self, ctx: &Context<'_>) -> bool {
        self.backend.is_none_or(|b| b == ctx.backend)
            && crate::kernel::KernelRange::applies(self.kernel.as_ref(), ctx.kernel)
            && selects(self.packet, self.answered_by.as_deref(), ctx)
    }
}

/// `, answered by ep1` for an entry with that condition: failures say which class they are of.
fn condition_text(answered_by: Option<&str>) -> String {
    answered_by.map(|a| format!(", answered by {a}")).unwrap_or_default()
}

/// Check every expectation of `probe` that applies under `backend`.
pub fn check(probe: &ProbeSpec, backend: Backend, exchanges: &[Exchange]) -> Vec<Failure> {
    let kernel = crate::kernel::running();
    let mut out = vec![];
    for ex in exchanges {
        if probe.replies && !ex.replied {
            let f = Failure::of_packet(
                FailureKind::NoReply,
                ex.packet,
                format!("packet {}: a reply", ex.packet),
                format!("no reply reached {} within {} ms; {}", probe.from, probe.timeout_ms, whereabouts(ex)),
            );
            let last_hooks =
                ex.request.path.iter().filter_map(|(ns, evs)| Some((ns.clone(), evs.last()?.hook.clone()))).collect();
            let seen_at = ex.request.seen.keys().cloned().collect();
            out.push(Failure { netns: Some(probe.from.clone()), seen_at, last_hooks, ..f });
        }
        if !probe.replies && ex.replied {
            let f = Failure::of_packet(
                FailureKind::UnexpectedReply,
                ex.packet,
                format!("packet {}: no reply (the request is dropped)", ex.packet),
                format!("a reply reached {}", probe.from),
            );
            out.push(Failure { netns: Some(probe.from.clone()), ..f });
        }
    }
    for ex in exchanges {
        let ctx = Context { backend, kernel, exchange: ex, exchanges };
        for e in probe.path.iter().filter(|e| e.applies(&ctx)) {
            out.extend(check_path(e, ex));
        }
        let reference = reference_ports(probe, ex);
        for e in probe.addr.iter().filter(|e| e.applies(&ctx)) {
            out.extend(check_addr(e, ex, reference));
        }
    }
    for (server, min) in &probe.answered_by {
        let n = exchanges.iter().filter(|x| x.answer.as_deref() == Some(server.as_str())).count();
        if n < *min as usize {
            let mut by: BTreeMap<&str, usize> = BTreeMap::new();
            for x in exchanges {
                *by.entry(x.answer.as_deref().unwrap_or("(no answer)")).or_default() += 1;
            }
            let tally = by.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ");
            let f = Failure::new(
                FailureKind::Answers,
                format!("answers from {server}"),
                format!("expected at least {min} of {}, got {n} ({tally})", exchanges.len()),
            );
            out.push(Failure {
                answered_by: Some(server.clone()),
                expected: Some(min.to_string()),
                observed: Some(n.to_string()),
                ..f
            });
        }
    }
    out
}

/// Where a request that got no reply went: the capture points that saw it and the last hook
/// it met in each netns, so the failure names the hop where it was lost.
fn whereabouts(ex: &Exchange) -> String {
    let pe = &ex.request;
    let seen: Vec<String> = pe.seen.keys().map(ToString::to_string).collect();
    let last: Vec<String> =
        pe.path.iter().filter_map(|(ns, evs)| evs.last().map(|e| format!("{} in netns {ns}", e.hook))).collect();
    let seen = if seen.is_empty() { "captured nowhere".to_string() } else { format!("seen at {}", seen.join(", ")) };
    let last = if last.is_empty() { "no trace event".to_string() } else { format!("last hooks {}", last.join(", ")) };
    format!("the request was {seen}; {last}")
}

/// Check a probe's conntrack expectations against the entries of each netns after the run.
pub fn check_conntrack(probe: &ProbeSpec, entries: &BTreeMap<String, Vec<Entry>>) -> Vec<Failure> {
    let v6 = probe.to.addr().is_some_and(|a| a.is_ipv6());
    let default_proto = crate::probe::prober(probe.kind).conntrack_proto(v6);
    probe
        .conntrack
        .iter()
        .filter_map(|c| {
            let proto = c.proto.unwrap_or(default_proto);
            let list = entries.get(&c.netns).map(Vec::as_slice).unwrap_or_default();
            if list.iter().any(|e| e.matches(Some(proto.name()), &c.orig, &c.reply)) {
                return None;
            }
            let lines: Vec<&str> = list.iter().filter(|e| e.proto == proto.name()).map(|e| e.line.as_str()).collect();
            let f = Failure::new(
                FailureKind::Conntrack,
                format!("conntrack entry in netns {}", c.netns),
                format!(
                    "no {proto} entry with orig {:?} and reply {:?}; entries:\n{}",
                    c.orig,
                    c.reply,
                    if lines.is_empty() {
                        "    (none)".to_string()
                    } else {
                        lines.iter().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
                    }
                ),
            );
            Some(Failure {
                netns: Some(c.netns.clone()),
                expected: Some(format!("{proto} orig {:?} reply {:?}", c.orig, c.reply)),
                observed: Some(lines.join("\n")),
                ..f
            })
        })
        .collect()
}

fn observed(e: &PathExpect, ex: &Exchange) -> Vec<Hook> {
    ex.of(e.direction).path.get(&e.netns).map(|evs| evs.iter().map(|ev| ev.hook.clone()).collect()).unwrap_or_default()
}

fn check_path(e: &PathExpect, ex: &Exchange) -> Vec<Failure> {
    let seen = observed(e, ex);
    let cond = condition_text(e.answered_by.as_deref());
    let what = |kind: &str| format!("path of packet {} {} in netns {}{cond} ({kind})", ex.packet, e.direction, e.netns);
    let fail = |kind: FailureKind, what: String, detail: String, missing: Vec<Hook>, unexpected: Vec<Hook>| Failure {
        direction: Some(e.direction),
        netns: Some(e.netns.clone()),
        answered_by: e.answered_by.clone(),
        hooks: seen.clone(),
        missing,
        unexpected,
        ..Failure::of_packet(kind, ex.packet, what, detail)
    };
    let mut out = vec![];
    if let Some(want) = &e.exact
        && want != &seen
    {
        let lines = diff_lines(want, &seen);
        let only = |mark: char| lines.iter().filter(|(m, _)| *m == mark).map(|(_, h)| (*h).clone()).collect();
        out.push(fail(FailureKind::PathExact, what("exact"), diff_text(&lines), only('-'), only('+')));
    }
    if let Some(want) = &e.includes
        && let Some(missing) = first_missing_in_order(want, &seen)
    {
        out.push(fail(
            FailureKind::PathIncludes,
            what("includes, in order"),
            format!("`{}` not found in order; observed:\n{}", want[missing], list(&seen)),
            vec![want[missing].clone()],
            vec![],
        ));
    }
    if let Some(want) = &e.last
        && seen.last() != Some(want)
    {
        let f = fail(
            FailureKind::PathLast,
            what("last hook"),
            format!(
                "expected the packet's last hook to be {want}, it was {}; observed:\n{}",
                seen.last().map(|h| h.to_string()).unwrap_or_else(|| "none".into()),
                list(&seen)
            ),
            vec![want.clone()],
            seen.last().cloned().into_iter().collect(),
        );
        out.push(Failure { expected: Some(want.to_string()), observed: seen.last().map(ToString::to_string), ..f });
    }
    for pattern in &e.never {
        let hits: Vec<Hook> = seen.iter().filter(|h| pattern.matches(h)).cloned().collect();
        if !hits.is_empty() {
            let f = fail(
                FailureKind::PathNever,
                what(&format!("never {pattern}")),
                format!(
                    "visited {}; observed:\n{}",
                    hits.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", "),
                    list(&seen)
                ),
                vec![],
                hits,
            );
            out.push(Failure { expected: Some(pattern.to_string()), ..f });
        }
    }
    out
}

/// The index of the first wanted hook not found after the previous ones, if any.
pub fn first_missing_in_order(want: &[Hook], seen: &[Hook]) -> Option<usize> {
    let mut it = seen.iter();
    want.iter().position(|w| !it.any(|s| s == w))
}

fn list(hooks: &[Hook]) -> String {
    if hooks.is_empty() {
        return "    (no trace events)".into();
    }
    hooks.iter().map(|h| format!("    {h}")).collect::<Vec<_>>().join("\n")
}

/// A line diff of two hook sequences: `-` expected only, `+` observed only.
pub fn diff(want: &[Hook], seen: &[Hook]) -> String {
    diff_text(&diff_lines(want, seen))
}

/// The lines of [`diff`]: each hook with its mark, `' '` on both sides.
fn diff_lines<'a>(want: &'a [Hook], seen: &'a [Hook]) -> Vec<(char, &'a Hook)> {
    let (n, m) = (want.len(), seen.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if want[i] == seen[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, vec![]);
    while i < n || j < m {
        if i < n && j < m && want[i] == seen[j] {
            out.push((' ', &want[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(('+', &seen[j]));
            j += 1;
        } else {
            out.push(('-', &want[i]));
            i += 1;
        }
    }
    out
}

fn diff_text(lines: &[(char, &Hook)]) -> String {
    let mut out = String::from("expected (-) vs observed (+):\n");
    for (mark, hook) in lines {
        let _ = writeln!(out, "  {mark} {hook}");
    }
    out.trim_end().to_string()
}

/// The ports of the probe's connection where its sender put it on the wire, as `(sport,
/// dport)` of the request: its first capture point in the probe's `from` netns. `"kept"` and
/// `"changed"` are held against these (reversed for the reply).
pub fn reference_ports(probe: &ProbeSpec, ex: &Exchange) -> Option<(u16, u16)> {
    ex.request.seen.iter().filter(|(point, _)| point.netns == probe.from).find_map(|(_, p)| match p.ports() {
        (Some(s), Some(d)) => Some((s, d)),
        _ => None,
    })
}

/// The reference ports of a packet of `direction`, as its own `(sport, dport)`.
pub fn oriented(reference: Option<(u16, u16)>, direction: Direction) -> (Option<u16>, Option<u16>) {
    match (reference, direction) {
        (Some((s, d)), Direction::Request) => (Some(s), Some(d)),
        (Some((s, d)), Direction::Reply) => (Some(d), Some(s)),
        (None, _) => (None, None),
    }
}

/// Whether port `got` is what `want` says, `reference` being the connection's own port on that side.
pub fn port_holds(want: PortExpect, got: Option<u16>, reference: Option<u16>) -> bool {
    match (want, got, reference) {
        (PortExpect::Is(p), g, _) => g == Some(p),
        (PortExpect::Kept, Some(g), Some(r)) => g == r,
        (PortExpect::Changed, Some(g), Some(r)) => g != r,
        _ => false,
    }
}

fn check_addr(e: &AddrExpect, ex: &Exchange, reference: Option<(u16, u16)>) -> Vec<Failure> {
    let cond = condition_text(e.answered_by.as_deref());
    let what = format!("addresses of packet {} {} at {}{cond}", ex.packet, e.direction, e.at);
    let seen = ex.of(e.direction).seen.get(&e.at);
    let reference = oriented(reference, e.direction);
    let (ok, expected, observed) = match (e.absent, seen) {
        (true, None) => return vec![],
        (true, Some(p)) => (false, "not seen".to_string(), describe(e, p, reference)),
        (false, None) => (false, expected_text(e), "not seen".to_string()),
        (false, Some(p)) => (header_matches(e, p, reference), expected_text(e), describe(e, p, reference)),
    };
    if ok {
        return vec![];
    }
    let kind = match (e.absent, seen) {
        (true, _) => FailureKind::Seen,
        (false, None) => FailureKind::NotSeen,
        (false, Some(_)) => FailureKind::Header,
    };
    let detail = format!("at {}: expected {expected}, observed {observed}", e.at);
    vec![Failure {
        direction: Some(e.direction),
        at: Some(e.at.clone()),
        answered_by: e.answered_by.clone(),
        mismatched: match (kind, seen) {
            (FailureKind::Header, Some(p)) => mismatched(e, p, reference),
            _ => vec![],
        },
        observed: seen.is_some().then_some(observed),
        expected: Some(expected),
        ..Failure::of_packet(kind, ex.packet, what, detail)
    }]
}

fn header_matches(e: &AddrExpect, p: &PacketInfo, reference: (Option<u16>, Option<u16>)) -> bool {
    mismatched(e, p, reference).is_empty()
}

/// The fields of `p` that are not what `e` says.
fn mismatched(e: &AddrExpect, p: &PacketInfo, reference: (Option<u16>, Option<u16>)) -> Vec<HeaderField> {
    let (sport, dport) = p.ports();
    [
        (HeaderField::Src, e.src.is_none_or(|s| p.src == Some(s))),
        (HeaderField::Dst, e.dst.is_none_or(|d| p.dst == Some(d))),
        (HeaderField::Sport, e.sport.is_none_or(|s| port_holds(s, sport, reference.0))),
        (HeaderField::Dport, e.dport.is_none_or(|d| port_holds(d, dport, reference.1))),
        (HeaderField::Ttl, e.ttl.is_none_or(|t| p.ttl == Some(t))),
        (HeaderField::MacSrc, e.mac_src.is_none_or(|m| p.mac_src == Some(m))),
        (HeaderField::MacDst, e.mac_dst.is_none_or(|m| p.mac_dst == Some(m))),
    ]
    .into_iter()
    .filter_map(|(field, holds)| (!holds).then_some(field))
    .collect()
}

/// An address (`none` when unknown) and what follows it, `:port...`: an IPv6 address before a
/// port is bracketed (`[fd00::2]:80`), as in a URL.
fn endpoint(a: Option<std::net::IpAddr>, none: &str, port: &str) -> String {
    match a {
        Some(a @ std::net::IpAddr::V6(_)) if !port.is_empty() => format!("[{a}]{port}"),
        Some(a) => format!("{a}{port}"),
        None => format!("{none}{port}"),
    }
}

/// `src[:sport] > dst[:dport]` plus the TTL and MACs the expectation names (`any` where it
/// names nothing), so expected and observed print side by side.
fn expected_text(e: &AddrExpect) -> String {
    let port = |p: Option<PortExpect>| p.map(|p| format!(":{p}")).unwrap_or_default();
    let mut s = format!("{} > {}", endpoint(e.src, "any", &port(e.sport)), endpoint(e.dst, "any", &port(e.dport)));
    if let Some(t) = e.ttl {
        s.push_str(&format!(" ttl {t}"));
    }
    if e.mac_src.is_some() || e.mac_dst.is_some() {
        let mac = |m: Option<Mac>| m.map(|m| m.to_string()).unwrap_or_else(|| "any".into());
        s.push_str(&format!(" mac {} > {}", mac(e.mac_src), mac(e.mac_dst)));
    }
    s
}

/// The observed header in the shape of [`expected_text`]; a port held against a relation says
/// how it relates (`:40312 (kept)`, `:1024 (changed from 40312)`).
fn describe(e: &AddrExpect, p: &PacketInfo, reference: (Option<u16>, Option<u16>)) -> String {
    let (sport, dport) = p.ports();
    let port = |want: Option<PortExpect>, got: Option<u16>, r: Option<u16>| match (want, got, r) {
        (Some(PortExpect::Is(_)), Some(g), _) => format!(":{g}"),
        (Some(_), Some(g), Some(r)) if g == r => format!(":{g} (kept)"),
        (Some(_), Some(g), Some(r)) => format!(":{g} (changed from {r})"),
        (Some(_), Some(g), None) => format!(":{g} (the probe's own port was not captured in its netns)"),
        _ => String::new(),
    };
    let mut s = format!(
        "{} > {}",
        endpoint(p.src, "?", &port(e.sport, sport, reference.0)),
        endpoint(p.dst, "?", &port(e.dport, dport, reference.1))
    );
    if e.ttl.is_some() {
        s.push_str(&format!(" ttl {}", p.ttl.map(|t| t.to_string()).unwrap_or_else(|| "?".into())));
    }
    if e.mac_src.is_some() || e.mac_dst.is_some() {
        let mac = |m: Option<Mac>| m.map(|m| m.to_string()).unwrap_or_else(|| "?".into());
        s.push_str(&format!(" mac {} > {}", mac(p.mac_src), mac(p.mac_dst)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(s: &[&str]) -> Vec<Hook> {
        s.iter().map(|h| h.parse().unwrap()).collect()
    }

    #[test]
    fn diff_marks_missing_and_extra() {
        let want = hooks(&["raw:PREROUTING:policy:2", "nat:POSTROUTING:rule:1", "eb:nat:POSTROUTING"]);
        let seen = hooks(&["raw:PREROUTING:policy:2", "nat:POSTROUTING:policy:2", "eb:nat:POSTROUTING"]);
        let d = diff(&want, &seen);
        assert!(d.contains("  - nat:POSTROUTING:rule:1"), "{d}");
        assert!(d.contains("  + nat:POSTROUTING:policy:2"), "{d}");
        assert!(d.contains("    raw:PREROUTING:policy:2"), "{d}");
    }

    #[test]
    fn subsequence_in_order() {
        let seen = hooks(&["eb:nat:PREROUTING", "raw:PREROUTING:policy:2", "filter:FORWARD:rule:1"]);
        assert_eq!(first_missing_in_order(&hooks(&["eb:nat:PREROUTING", "filter:FORWARD:rule:1"]), &seen), None);
        assert_eq!(first_missing_in_order(&hooks(&["filter:FORWARD:rule:1", "eb:nat:PREROUTING"]), &seen), Some(1));
        assert_eq!(first_missing_in_order(&hooks(&["nat:POSTROUTING:rule:1"]), &seen), Some(0));
    }

    #[test]
    fn header_fields_are_checked_each() {
        use crate::evidence::PacketEvidence;
        use crate::scenario::Direction;
        let point: crate::scenario::CapturePoint = "node2/eth0".parse().unwrap();
        let info = PacketInfo {
            src: Some("10.10.15.2".parse().unwrap()),
            dst: Some("10.10.14.2".parse().unwrap()),
            ttl: Some(63),
            mac_src: Some("02:00:00:00:00:01".parse().unwrap()),
            mac_dst: Some("02:00:00:00:00:02".parse().unwrap()),
            l4: crate::evidence::packet::L4::Udp { sport: 4000, dport: 53 },
            ..Default::default()
        };
        let mut request = PacketEvidence::default();
        request.seen.insert(point.clone(), info);
        let ex = Exchange {
            packet: 1,
            nonce: vec![],
            request,
            reply: PacketEvidence::default(),
            replied: true,
            answer: None,
        };
        let base = AddrExpect {
            src: Some("10.10.15.2".parse().unwrap()),
            sport: Some(4000.into()),
            dport: Some(53.into()),
            ttl: Some(63),
            mac_src: Some("02:00:00:00:00:01".parse().unwrap()),
            ..AddrExpect::new(Direction::Request, point.clone())
        };
        assert!(check_addr(&base, &ex, None).is_empty());
        let wrong_ttl = AddrExpect { ttl: Some(62), ..base.clone() };
        let f = check_addr(&wrong_ttl, &ex, None);
        assert_eq!(
            f[0].detail,
            "at node2/eth0: expected 10.10.15.2:4000 > any:53 ttl 62 mac 02:00:00:00:00:01 > any, observed 10.10.15.2:4000 > 10.10.14.2:53 ttl 63 mac 02:00:00:00:00:01 > 02:00:00:00:00:02"
        );
        assert_eq!(f[0].packet, Some(1));
        assert_eq!(check_addr(&AddrExpect { dport: Some(54.into()), ..base.clone() }, &ex, None).len(), 1);
        assert_eq!(
            check_addr(&AddrExpect { mac_dst: Some("02:00:00:00:00:03".parse().unwrap()), ..base.clone() }, &ex, None)
                .len(),
            1
        );
        assert_eq!(check_addr(&AddrExpect { absent: true, ..base }, &ex, None).len(), 1);
    }

    /// A TCP exchange whose request left `client/eth0` with sport 40312 and was seen at
    /// `host/eth0` with `uplink_sport`; its reply came back to 40312 at client/eth0.
    fn connection(packet: u16, uplink_sport: u16, answer: Option<&str>) -> Exchange {
        use crate::evidence::PacketEvidence;
        let tcp =
            |sport, dport| crate::evidence::packet::L4::Tcp { sport, dport, flags: "S".into(), seq: None, ack: None };
        let info = |src: &str, l4| PacketInfo { src: Some(src.parse().unwrap()), l4, ..Default::default() };
        let mut request = PacketEvidence::default();
        request.seen.insert("client/eth0".parse().unwrap(), info("10.0.0.2", tcp(40312, 80)));
        request.seen.insert("host/eth0".parse().unwrap(), info("10.9.0.1", tcp(uplink_sport, 80)));
        let mut reply = PacketEvidence::default();
        reply.seen.insert("client/eth0".parse().unwrap(), info("10.9.0.30", tcp(80, 40312)));
        Exchange { packet, nonce: vec![], request, reply, replied: true, answer: answer.map(Into::into) }
    }

    fn probe_with(addr: Vec<AddrExpect>, path: Vec<PathExpect>) -> ProbeSpec {
        let mut p = ProbeSpec::new("p", crate::scenario::ProbeKind::Tcp, "client", "10.9.0.30".parse().unwrap());
        p.port = Some(80);
        p.addr = addr;
        p.path = path;
        p
    }

    #[test]
    fn kept_and_changed_hold_against_the_probes_own_port() {
        let uplink = |sport: PortExpect| AddrExpect {
            sport: Some(sport),
            dport: Some(PortExpect::Kept),
            ..AddrExpect::new(Direction::Request, "host/eth0".parse().unwrap())
        };
        let kept = probe_with(vec![uplink(PortExpect::Kept)], vec![]);
        let changed = probe_with(vec![uplink(PortExpect::Changed)], vec![]);
        let untranslated = [connection(1, 40312, None)];
        let translated = [connection(1, 1024, None)];
        assert_eq!(check(&kept, Backend::Legacy, &untranslated), vec![]);
        assert_eq!(check(&changed, Backend::Legacy, &translated), vec![]);
        // A translation that is missing, and one that appears where none should be.
        let f = check(&changed, Backend::Legacy, &untranslated);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].what, "addresses of packet 1 request at host/eth0");
        assert!(
            f[0].detail.ends_with("expected any:changed > any:kept, observed 10.9.0.1:40312 (kept) > ?:80 (kept)"),
            "{}",
            f[0].detail
        );
        let f = check(&kept, Backend::Legacy, &translated);
        assert!(f[0].detail.contains(":1024 (changed from 40312)"), "{f:#?}");
        // The reply's dport is held against the client's port too.
        let reply = AddrExpect {
            dport: Some(PortExpect::Kept),
            ..AddrExpect::new(Direction::Reply, "client/eth0".parse().unwrap())
        };
        assert_eq!(check(&probe_with(vec![reply.clone()], vec![]), Backend::Legacy, &translated), vec![]);
        let changed_reply = AddrExpect { dport: Some(PortExpect::Changed), ..reply };
        assert_eq!(check(&probe_with(vec![changed_reply], vec![]), Backend::Legacy, &translated).len(), 1);
        // Without the probe's own port captured in its netns, a relation cannot hold.
        let mut blind = connection(1, 40312, None);
        blind.request.seen.remove(&"client/eth0".parse().unwrap());
        assert_eq!(check(&kept, Backend::Legacy, &[blind]).len(), 1);
    }

    #[test]
    fn entries_apply_to_every_packet_or_to_those_their_conditions_select() {
        let at_uplink = |packet: Option<Packets>, answered_by: Option<&str>| AddrExpect {
            packet,
            answered_by: answered_by.map(Into::into),
            src: Some("10.9.0.99".parse().unwrap()),
            ..AddrExpect::new(Direction::Request, "host/eth0".parse().unwrap())
        };
        let flow =
            [connection(1, 40312, Some("ep1")), connection(2, 40312, Some("ep2")), connection(3, 40312, Some("ep1"))];
        let failing = |e: AddrExpect| -> Vec<Option<u16>> {
            check(&probe_with(vec![e], vec![]), Backend::Nft, &flow).iter().map(|f| f.packet).collect()
        };
        assert_eq!(failing(at_uplink(None, None)), [Some(1), Some(2), Some(3)]);
        assert_eq!(failing(at_uplink(Some(Packets::One(2)), None)), [Some(2)]);
        assert_eq!(failing(at_uplink(Some(Packets::From(2)), None)), [Some(2), Some(3)]);
        assert_eq!(failing(at_uplink(None, Some("ep1"))), [Some(1), Some(3)]);
        // With answered_by, packets count among those that endpoint answered.
        assert_eq!(failing(at_uplink(Some(Packets::From(2)), Some("ep1"))), [Some(3)]);
        assert_eq!(failing(at_uplink(Some(Packets::One(1)), Some("ep1"))), [Some(1)]);
        assert_eq!(failing(at_uplink(Some(Packets::One(1)), Some("ep2"))), [Some(2)]);
        assert_eq!(failing(at_uplink(Some(Packets::One(2)), Some("ep2"))), Vec::<Option<u16>>::new());
        assert_eq!(failing(at_uplink(None, Some("ep9"))), Vec::<Option<u16>>::new());
        let f = check(&probe_with(vec![at_uplink(None, Some("ep2"))], vec![]), Backend::Nft, &flow);
        assert_eq!(f[0].what, "addresses of packet 2 request at host/eth0, answered by ep2");
        // A backend variant applies under its backend only.
        let mut path = PathExpect::new(Direction::Request, "host");
        path.exact = Some(hooks(&["nat:POSTROUTING:rule:1"]));
        path.backend = Some(Backend::Legacy);
        assert_eq!(check(&probe_with(vec![], vec![path.clone()]), Backend::Nft, &flow), vec![]);
        let f = check(&probe_with(vec![], vec![path]), Backend::Legacy, &flow);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].what, "path of packet 1 request in netns host (exact)");
    }

    /// An exchange whose request met `hooks` in netns `host` and got no reply.
    fn traced(hooks_seen: &[&str]) -> Exchange {
        use crate::observe::trace::event::{Ifaces, TraceEvent};
        let mut ex = connection(1, 40312, None);
        ex.replied = false;
        let event = |h: &Hook| TraceEvent {
            netns: "host".into(),
            hook: h.clone(),
            ifaces: Ifaces::default(),
            packet: PacketInfo::default(),
            payload: None,
            nonce: None,
            source: None,
        };
        ex.request.path.insert("host".into(), hooks(hooks_seen).iter().map(event).collect());
        ex
    }

    /// The texts people read, pinned: tests match on kinds and fields, so only these notice a
    /// rewording.
    #[test]
    fn failure_texts_are_pinned() {
        let mut path = PathExpect::new(Direction::Request, "host");
        path.exact = Some(hooks(&["raw:PREROUTING:policy:2", "nat:POSTROUTING:rule:1"]));
        path.includes = Some(hooks(&["nat:POSTROUTING:rule:1"]));
        path.last = Some("nat:POSTROUTING:rule:1".parse().unwrap());
        path.never = vec!["filter".parse().unwrap()];
        let ex = traced(&["raw:PREROUTING:policy:2", "filter:FORWARD:policy:1"]);
        let f = check(&probe_with(vec![], vec![path]), Backend::Legacy, &[ex]);
        let texts: Vec<(FailureKind, &str, &str)> =
            f.iter().map(|f| (f.kind, f.what.as_str(), f.detail.as_str())).collect();
        let observed = "observed:\n    raw:PREROUTING:policy:2\n    filter:FORWARD:policy:1";
        assert_eq!(
            texts,
            [
                (
                    FailureKind::NoReply,
                    "packet 1: a reply",
                    "no reply reached client within 1000 ms; the request was seen at client/eth0, host/eth0; last hooks filter:FORWARD:policy:1 in netns host"
                ),
                (
                    FailureKind::PathExact,
                    "path of packet 1 request in netns host (exact)",
                    "expected (-) vs observed (+):\n    raw:PREROUTING:policy:2\n  + filter:FORWARD:policy:1\n  - nat:POSTROUTING:rule:1"
                ),
                (
                    FailureKind::PathIncludes,
                    "path of packet 1 request in netns host (includes, in order)",
                    &format!("`nat:POSTROUTING:rule:1` not found in order; {observed}") as &str
                ),
                (
                    FailureKind::PathLast,
                    "path of packet 1 request in netns host (last hook)",
                    &format!(
                        "expected the packet's last hook to be nat:POSTROUTING:rule:1, it was filter:FORWARD:policy:1; {observed}"
                    ) as &str
                ),
                (
                    FailureKind::PathNever,
                    "path of packet 1 request in netns host (never filter)",
                    &format!("visited filter:FORWARD:policy:1; {observed}") as &str
                ),
            ]
        );
    }

    #[test]
    fn failures_carry_their_kind_and_fields() {
        let mut path = PathExpect::new(Direction::Request, "host");
        path.exact = Some(hooks(&["raw:PREROUTING:policy:2", "nat:POSTROUTING:rule:1"]));
        path.last = Some("nat:POSTROUTING:rule:1".parse().unwrap());
        let uplink = AddrExpect {
            src: Some("10.9.0.2".parse().unwrap()),
            sport: Some(PortExpect::Changed),
            ..AddrExpect::new(Direction::Request, "host/eth0".parse().unwrap())
        };
        let gone = AddrExpect::new(Direction::Reply, "host/eth0".parse().unwrap());
        let ex = traced(&["raw:PREROUTING:policy:2", "filter:FORWARD:policy:1"]);
        let f = check(&probe_with(vec![uplink, gone], vec![path]), Backend::Legacy, &[ex]);
        let of = |kind| f.iter().find(|f| f.kind == kind).unwrap_or_else(|| panic!("no {kind:?} in {f:#?}"));
        let lost = of(FailureKind::NoReply);
        assert_eq!(lost.netns.as_deref(), Some("client"));
        assert_eq!(lost.last_hooks["host"], "filter:FORWARD:policy:1".parse().unwrap());
        assert_eq!(lost.seen_at.len(), 2);
        let exact = of(FailureKind::PathExact);
        assert_eq!(
            (exact.packet, exact.direction, exact.netns.as_deref()),
            (Some(1), Some(Direction::Request), Some("host"))
        );
        assert_eq!(exact.missing, hooks(&["nat:POSTROUTING:rule:1"]));
        assert_eq!(exact.unexpected, hooks(&["filter:FORWARD:policy:1"]));
        assert_eq!(exact.hooks, hooks(&["raw:PREROUTING:policy:2", "filter:FORWARD:policy:1"]));
        let last = of(FailureKind::PathLast);
        assert_eq!(last.observed.as_deref(), Some("filter:FORWARD:policy:1"));
        let header = of(FailureKind::Header);
        assert_eq!(header.mismatched, [HeaderField::Src, HeaderField::Sport]);
        assert_eq!(header.at, Some("host/eth0".parse().unwrap()));
        assert_eq!(header.observed.as_deref(), Some("10.9.0.1:40312 (kept) > ?"));
        let not_seen = of(FailureKind::NotSeen);
        assert_eq!((not_seen.direction, not_seen.observed.as_deref()), (Some(Direction::Reply), None));
    }

    #[test]
    fn reply_answer_address_and_conntrack_texts_are_pinned() {
        let mut p = probe_with(
            vec![
                AddrExpect::new(Direction::Reply, "host/eth9".parse().unwrap()),
                AddrExpect { absent: true, ..AddrExpect::new(Direction::Request, "client/eth0".parse().unwrap()) },
            ],
            vec![],
        );
        p.replies = false;
        p.answered_by.insert("ep9".into(), 1);
        let f = check(&p, Backend::Legacy, &[connection(1, 40312, Some("ep1"))]);
        let texts: Vec<(FailureKind, &str, &str)> =
            f.iter().map(|f| (f.kind, f.what.as_str(), f.detail.as_str())).collect();
        assert_eq!(
            texts,
            [
                (FailureKind::UnexpectedReply, "packet 1: no reply (the request is dropped)", "a reply reached client"),
                (
                    FailureKind::NotSeen,
                    "addresses of packet 1 reply at host/eth9",
                    "at host/eth9: expected any > any, observed not seen"
                ),
                (
                    FailureKind::Seen,
                    "addresses of packet 1 request at client/eth0",
                    "at client/eth0: expected not seen, observed 10.0.0.2 > ?"
                ),
                (FailureKind::Answers, "answers from ep9", "expected at least 1 of 1, got 0 (ep1: 1)"),
            ]
        );
        p.conntrack.push(crate::scenario::ConntrackExpect {
            netns: "host".into(),
            proto: None,
            orig: Default::default(),
            reply: Default::default(),
        });
        let f = check_conntrack(&p, &BTreeMap::new());
        assert_eq!((f[0].kind, f[0].netns.as_deref()), (FailureKind::Conntrack, Some("host")));
        assert_eq!(f[0].what, "conntrack entry in netns host");
        assert!(f[0].detail.starts_with("no tcp entry with orig Tuple {"), "{}", f[0].detail);
        assert!(f[0].detail.ends_with("entries:\n    (none)"), "{}", f[0].detail);
    }
}
