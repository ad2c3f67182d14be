//! Where a packet was seen and with which addresses, as reports show it.

use std::fmt::Write;

use crate::evidence::PacketEvidence;

/// Where the packet was seen and with which addresses.
pub fn address_table(pe: &PacketEvidence) -> String {
    let mut out = String::new();
    let every = pe.seen.keys().flat_map(|point| {
        let many = pe.again.contains_key(point);
        pe.sightings(point).enumerate().map(move |(k, info)| {
            // A point that saw the packet more than once numbers its sightings.
            let name = if many { format!("{point} #{}", k + 1) } else { point.to_string() };
            (name, info)
        })
    });
    for (point, info) in every {
        let (src, dst) = info.endpoints();
        let ttl = info.ttl.map(|t| format!("ttl {t}")).unwrap_or_default();
        let macs = match (info.mac_src, info.mac_dst) {
            (Some(s), Some(d)) => format!("{s} > {d}"),
            _ => String::new(),
        };
        let _ = writeln!(out, "        {point:<20} {src:>22} > {dst:<22} {ttl:<7} {macs}");
    }
    if pe.seen.is_empty() {
        out.push_str("        (not captured anywhere)\n");
    }
    out
}
