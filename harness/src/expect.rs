//! Verdicts: a probe's evidence held against its path and address expectations, with failure
//! messages that show expected against observed.

use std::fmt::Write;

use crate::evidence::Exchange;
use crate::firewall::Backend;
use crate::packet::{Mac, PacketInfo};
use std::collections::BTreeMap;

use crate::conntrack::Entry;
use crate::scenario::{AddrExpect, PathExpect, ProbeKind, ProbeSpec};
use crate::trace::Hook;

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// What was expected, in a line (`path of packet 1 request in host (exact)`).
    pub what: String,
    /// Expected against observed.
    pub detail: String,
}

/// Check every expectation of `probe` that applies under `backend`.
pub fn check(probe: &ProbeSpec, backend: Backend, exchanges: &[Exchange]) -> Vec<Failure> {
    let mut out = vec![];
    for ex in exchanges {
        if probe.replies && !ex.replied {
            out.push(Failure {
                what: format!("packet {}: a reply", ex.packet),
                detail: format!("no reply reached {} within {} ms", probe.from, probe.timeout_ms),
            });
        }
        if !probe.replies && ex.replied {
            out.push(Failure {
                what: format!("packet {}: no reply (the request is dropped)", ex.packet),
                detail: format!("a reply reached {}", probe.from),
            });
        }
    }
    let kernel = crate::kernel::running();
    for e in probe.path.iter().filter(|e| e.applies(backend, kernel)) {
        if let Some(ex) = exchanges.iter().find(|x| x.packet == e.packet) {
            out.extend(check_path(e, ex));
        }
    }
    for e in probe.addr.iter().filter(|e| e.applies(kernel)) {
        if let Some(ex) = exchanges.iter().find(|x| x.packet == e.packet) {
            out.extend(check_addr(e, ex));
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
            out.push(Failure {
                what: format!("answers from {server}"),
                detail: format!("expected at least {min} of {}, got {n} ({tally})", exchanges.len()),
            });
        }
    }
    out
}

/// Check a probe's conntrack expectations against the entries of each netns after the run.
pub fn check_conntrack(probe: &ProbeSpec, entries: &BTreeMap<String, Vec<Entry>>) -> Vec<Failure> {
    let default_proto = match probe.kind {
        ProbeKind::Icmp => "icmp",
        ProbeKind::Udp => "udp",
        ProbeKind::Tcp | ProbeKind::Frame => "tcp",
    };
    probe
        .conntrack
        .iter()
        .filter_map(|c| {
            let proto = c.proto.as_deref().unwrap_or(default_proto);
            let list = entries.get(&c.netns).map(Vec::as_slice).unwrap_or_default();
            if list.iter().any(|e| e.matches(Some(proto), &c.orig, &c.reply)) {
                return None;
            }
            let lines: Vec<&str> = list.iter().filter(|e| e.proto == proto).map(|e| e.line.as_str()).collect();
            Some(Failure {
                what: format!("conntrack entry in netns {}", c.netns),
                detail: format!(
                    "no {proto} entry with orig {:?} and reply {:?}; entries:\n{}",
                    c.orig,
                    c.reply,
                    if lines.is_empty() {
                        "    (none)".to_string()
                    } else {
                        lines.iter().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
                    }
                ),
            })
        })
        .collect()
}

fn observed(e: &PathExpect, ex: &Exchange) -> Vec<Hook> {
    ex.of(e.direction).path.get(&e.netns).map(|evs| evs.iter().map(|ev| ev.hook.clone()).collect()).unwrap_or_default()
}

fn check_path(e: &PathExpect, ex: &Exchange) -> Vec<Failure> {
    let seen = observed(e, ex);
    let what = |kind: &str| format!("path of packet {} {} in netns {} ({kind})", e.packet, e.direction, e.netns);
    let mut out = vec![];
    if let Some(want) = &e.exact
        && want != &seen
    {
        out.push(Failure { what: what("exact"), detail: diff(want, &seen) });
    }
    if let Some(want) = &e.includes
        && let Some(missing) = first_missing_in_order(want, &seen)
    {
        out.push(Failure {
            what: what("includes, in order"),
            detail: format!("`{}` not found in order; observed:\n{}", want[missing], list(&seen)),
        });
    }
    if let Some(want) = &e.last
        && seen.last() != Some(want)
    {
        out.push(Failure {
            what: what("last hook"),
            detail: format!(
                "expected the packet's last hook to be {want}, it was {}; observed:\n{}",
                seen.last().map(|h| h.to_string()).unwrap_or_else(|| "none".into()),
                list(&seen)
            ),
        });
    }
    for pattern in &e.never {
        let hits: Vec<&Hook> = seen.iter().filter(|h| pattern.matches(h)).collect();
        if !hits.is_empty() {
            out.push(Failure {
                what: what(&format!("never {pattern}")),
                detail: format!(
                    "visited {}; observed:\n{}",
                    hits.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", "),
                    list(&seen)
                ),
            });
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
    let (n, m) = (want.len(), seen.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if want[i] == seen[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::from("expected (-) vs observed (+):\n"));
    while i < n || j < m {
        if i < n && j < m && want[i] == seen[j] {
            let _ = writeln!(out, "    {}", want[i]);
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            let _ = writeln!(out, "  + {}", seen[j]);
            j += 1;
        } else {
            let _ = writeln!(out, "  - {}", want[i]);
            i += 1;
        }
    }
    out.trim_end().to_string()
}

fn check_addr(e: &AddrExpect, ex: &Exchange) -> Vec<Failure> {
    let what = format!("addresses of packet {} {} at {}", e.packet, e.direction, e.at);
    let seen = ex.of(e.direction).seen.get(&e.at);
    let (ok, expected, observed) = match (e.absent, seen) {
        (true, None) => return vec![],
        (true, Some(p)) => (false, "not seen".to_string(), describe(e, p)),
        (false, None) => (false, expected_text(e), "not seen".to_string()),
        (false, Some(p)) => (header_matches(e, p), expected_text(e), describe(e, p)),
    };
    if ok {
        return vec![];
    }
    vec![Failure { what, detail: format!("at {}: expected {expected}, observed {observed}", e.at) }]
}

fn header_matches(e: &AddrExpect, p: &PacketInfo) -> bool {
    let (sport, dport) = p.ports();
    e.src.is_none_or(|s| p.src == Some(s))
        && e.dst.is_none_or(|d| p.dst == Some(d))
        && e.sport.is_none_or(|s| sport == Some(s))
        && e.dport.is_none_or(|d| dport == Some(d))
        && e.ttl.is_none_or(|t| p.ttl == Some(t))
        && e.mac_src.is_none_or(|m| p.mac_src == Some(m))
        && e.mac_dst.is_none_or(|m| p.mac_dst == Some(m))
}

/// `src[:sport] > dst[:dport]` plus the TTL and MACs the expectation names (`any` where it
/// names nothing), so expected and observed print side by side.
fn expected_text(e: &AddrExpect) -> String {
    let ip = |a: Option<std::net::IpAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "any".into());
    let port = |p: Option<u16>| p.map(|p| format!(":{p}")).unwrap_or_default();
    let mut s = format!("{}{} > {}{}", ip(e.src), port(e.sport), ip(e.dst), port(e.dport));
    if let Some(t) = e.ttl {
        s.push_str(&format!(" ttl {t}"));
    }
    if e.mac_src.is_some() || e.mac_dst.is_some() {
        let mac = |m: Option<Mac>| m.map(|m| m.to_string()).unwrap_or_else(|| "any".into());
        s.push_str(&format!(" mac {} > {}", mac(e.mac_src), mac(e.mac_dst)));
    }
    s
}

fn describe(e: &AddrExpect, p: &PacketInfo) -> String {
    let ip = |a: Option<std::net::IpAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "?".into());
    let (sport, dport) = p.ports();
    let port = |want: Option<u16>, got: Option<u16>| match (want, got) {
        (Some(_), Some(g)) => format!(":{g}"),
        _ => String::new(),
    };
    let mut s = format!("{}{} > {}{}", ip(p.src), port(e.sport, sport), ip(p.dst), port(e.dport, dport));
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
            l4: crate::packet::L4::Udp { sport: 4000, dport: 53 },
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
            packet: 1,
            direction: Direction::Request,
            at: point,
            kernel: None,
            src: Some("10.10.15.2".parse().unwrap()),
            dst: None,
            sport: Some(4000),
            dport: Some(53),
            ttl: Some(63),
            mac_src: Some("02:00:00:00:00:01".parse().unwrap()),
            mac_dst: None,
            absent: false,
        };
        assert!(check_addr(&base, &ex).is_empty());
        let wrong_ttl = AddrExpect { ttl: Some(62), ..base.clone() };
        let f = check_addr(&wrong_ttl, &ex);
        assert_eq!(
            f[0].detail,
            "at node2/eth0: expected 10.10.15.2:4000 > any:53 ttl 62 mac 02:00:00:00:00:01 > any, observed 10.10.15.2:4000 > 10.10.14.2:53 ttl 63 mac 02:00:00:00:00:01 > 02:00:00:00:00:02"
        );
        assert_eq!(check_addr(&AddrExpect { dport: Some(54), ..base.clone() }, &ex).len(), 1);
        assert_eq!(
            check_addr(&AddrExpect { mac_dst: Some("02:00:00:00:00:03".parse().unwrap()), ..base.clone() }, &ex).len(),
            1
        );
        assert_eq!(check_addr(&AddrExpect { absent: true, ..base }, &ex).len(), 1);
    }
}
