//! The path a packet took, as reports show it: hook by hook per netns, and as the seed
//! articles' kernel-log lines.

use std::fmt::Write;

use crate::evidence::PacketEvidence;

/// The observed path of one packet as a compact list, one netns after the other: each hook with
/// its verdict, interfaces, addresses and the rule that decided (its text, with its comment).
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
            let verdict = ev.verdict.as_ref().map(ToString::to_string).unwrap_or_default();
            let _ = write!(out, "        {:<32} {verdict:<16} {:<44} {src} > {dst}", ev.hook.to_string(), ifs);
            if let Some(rule) = &ev.rule {
                let _ = write!(out, "  [{}]", rule.text);
            }
            out.push('\n');
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
            let _ = writeln!(out, "        {}", crate::observe::trace::text::render(ev));
        }
    }
    out
}
