//! Judging `[[probe.addr]]`: the header each packet carried at a capture point against the
//! fields an entry names, ports held against the probe's own connection (`kept`, `changed`).

use super::{Context, ExpectationKind, Failure, FailureKind, ProbeEvidence, condition_text};
use crate::evidence::Exchange;
use crate::evidence::packet::{Mac, PacketInfo};
use crate::scenario::{AddrExpect, Direction, PortExpect, ProbeSpec};

/// `[[probe.addr]]`.
pub struct AddrKind;

impl ExpectationKind for AddrKind {
    fn name(&self) -> &'static str {
        "addr"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["addr"]
    }

    fn failures(&self) -> &'static [FailureKind] {
        &FailureKind::ADDRESS
    }

    fn judge(&self, probe: &ProbeSpec, evidence: &ProbeEvidence<'_>) -> Vec<Failure> {
        let mut out = vec![];
        for ex in evidence.exchanges {
            let ctx = evidence.context(ex);
            let reference = reference_ports(probe, ex);
            for (i, e) in probe.addr.iter().enumerate().filter(|(_, e)| e.applies(&ctx)) {
                out.extend(check_addr(e, ex, reference).into_iter().map(|f| f.by("addr", Some(i))));
            }
        }
        out
    }
}

impl AddrExpect {
    /// Whether this entry is about the packet and run of `ctx` (see [`PathExpect::applies`]).
    ///
    /// [`PathExpect::applies`]: crate::scenario::PathExpect::applies
    pub fn applies(&self, ctx: &Context<'_>) -> bool {
        self.conditions().applies(ctx)
    }
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
    let nth = e.sighting.filter(|&n| n != 1).map(|n| format!(" (sighting {n})")).unwrap_or_default();
    let what = format!("addresses of packet {} {} at {}{nth}{cond}", ex.packet, e.direction, e.at);
    let seen = ex.of(e.direction).sighting(&e.at, e.sighting.unwrap_or(1));
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
    let detail = format!("at {}{nth}: expected {expected}, observed {observed}", e.at);
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
            retransmissions: vec![],
            reply_retransmissions: vec![],
            replied: true,
            response: crate::evidence::Response::of_kind(crate::scenario::Answer::Reply),
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
}
