//! Where a packet was seen and with which addresses, as reports show it.

use std::fmt::Write;

use crate::evidence::PacketEvidence;

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
