//! Human-readable reports of outcomes: the observed path, the per-hop address table, the verdict.

use std::fmt::Write;

use crate::evidence::PacketEvidence;
use crate::run::{Outcome, ProbeOutcome};
use crate::scenario::Direction;

/// The observed path of one packet as a compact list, one netns after the other.
pub fn path_lines(pe: &PacketEvidence) -> String {
    let mut out = String::new();
    for (netns, events) in &pe.path {
        let _ = writeln!(out, "      netns {netns}:");
        for ev in events {
            let i = &ev.ifaces;
            let dev = |d: &Option<String>| d.clone().unwrap_or_default();
            let mut ifs = format!("IN={} OUT={}", dev(&i.indev), dev(&i.outdev));
            if i.physindev.is_some() || i.physoutdev.is_some() {
                let _ = write!(ifs, " PHYSIN={} PHYSOUT={}", dev(&i.physindev), dev(&i.physoutdev));
            }
            let (src, dst) = ev.packet.endpoints();
            let _ = writeln!(out, "        {:<32} {:<44} {src} > {dst}", ev.hook.to_string(), ifs);
        }
    }
    if pe.path.is_empty() {
        out.push_str("      (no trace events)\n");
    }
    out
}

/// The observed path in the seed articles' kernel-log shape (`TRACE: raw:PREROUTING:policy:2
/// IN=docker0 ...`), so it can be held next to them.
pub fn seed_lines(pe: &PacketEvidence) -> String {
    let mut out = String::new();
    for events in pe.path.values() {
        for ev in events {
            let _ = writeln!(out, "        {}", crate::trace::text::render(ev));
        }
    }
    out
}

/// Where the packet was seen and with which addresses.
pub fn address_table(pe: &PacketEvidence) -> String {
    let mut out = String::new();
    for (point, info) in &pe.seen {
        let (src, dst) = info.endpoints();
        let ttl = info.ttl.map(|t| format!("ttl {t}")).unwrap_or_default();
        let macs = match (info.mac_src, info.mac_dst) {
            (Some(s), Some(d)) => format!("{s} > {d}"),
            _ => String::new(),
        };
        let _ = writeln!(out, "        {:<20} {:>22} > {:<22} {ttl:<7} {macs}", point.to_string(), src, dst);
    }
    if pe.seen.is_empty() {
        out.push_str("        (not captured anywhere)\n");
    }
    out
}

/// A probe's verdict and, on failure or when asked, its evidence.
pub fn probe(p: &ProbeOutcome, show_path: bool) -> String {
    let mut out = String::new();
    let verdict = if p.failures.is_empty() { "ok" } else { "FAILED" };
    let _ = writeln!(out, "  probe {}: {verdict}", p.name);
    for f in &p.failures {
        let _ = writeln!(out, "    ✗ {}", f.what);
        for line in f.detail.lines() {
            let _ = writeln!(out, "        {line}");
        }
    }
    if show_path || !p.failures.is_empty() {
        for ex in &p.exchanges {
            for d in [Direction::Request, Direction::Reply] {
                let pe = ex.of(d);
                if d == Direction::Reply && pe.path.is_empty() && pe.seen.is_empty() && !ex.replied {
                    let _ = writeln!(out, "    packet {} reply: none", ex.packet);
                    continue;
                }
                let _ = writeln!(out, "    packet {} {d}: path", ex.packet);
                out.push_str(&path_lines(pe));
                if !pe.path.is_empty() {
                    let _ = writeln!(out, "      as kernel log lines:");
                    out.push_str(&seed_lines(pe));
                }
                let _ = writeln!(out, "      addresses:");
                out.push_str(&address_table(pe));
            }
        }
    }
    out
}

/// A scenario's report.
pub fn outcome(o: &Outcome, show_path: bool) -> String {
    let mut out = String::new();
    let verdict = if o.passed() { "PASS" } else { "FAIL" };
    let _ = writeln!(out, "{verdict} {} [{}]", o.scenario, o.backend.name());
    if let Some(wg) = &o.wireguard {
        let _ = writeln!(out, "  wireguard: {wg}");
    }
    for p in &o.probes {
        out.push_str(&probe(p, show_path));
    }
    if let Some(a) = &o.artifacts {
        let _ = writeln!(out, "  artifacts: {}", a.display());
    }
    out
}
