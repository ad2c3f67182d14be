//! One pcapng file with every interface of a run (`all.pcapng` in the artifacts), so Wireshark
//! shows the whole run in one window: an interface description per capture point, named
//! `netns/iface`, and every frame in time order across them.
//!
//! Written here rather than with a crate: the format is three kinds of block (section header,
//! interface description, enhanced packet; pcapng, draft-ietf-opsawg-pcapng), and libpcap, which
//! netpath already links, writes pcapng only with one interface.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::evidence::Frame;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// `if_name`: the interface's name.
const OPT_IF_NAME: u16 = 2;
/// `if_tsresol`: timestamps in units of 10^-N s.
const OPT_IF_TSRESOL: u16 = 9;
const OPT_END: u16 = 0;

/// The pcapng of `frames`: one interface per capture point (`netns/iface`, in the order of
/// their first frame), every frame in time order (stable: frames of one instant keep theirs),
/// timestamps in nanoseconds.
pub fn write(frames: &[Frame]) -> Vec<u8> {
    let mut out = vec![];
    block(&mut out, SHB, |b| {
        put32(b, BYTE_ORDER_MAGIC);
        put16(b, 1);
        put16(b, 0);
        // Section length: not given.
        b.extend_from_slice(&(-1i64).to_le_bytes());
    });
    let mut ids: BTreeMap<String, u32> = BTreeMap::new();
    let mut order: Vec<&Frame> = frames.iter().collect();
    order.sort_by_key(|f| f.ts);
    for f in &order {
        let name = f.point.to_string();
        if ids.contains_key(&name) {
            continue;
        }
        ids.insert(name.clone(), ids.len() as u32);
        block(&mut out, IDB, |b| {
            put16(b, f.linktype.0 as u16);
            put16(b, 0);
            // Snap length: none.
            put32(b, 0);
            option(b, OPT_IF_NAME, name.as_bytes());
            option(b, OPT_IF_TSRESOL, &[9]);
            option(b, OPT_END, &[]);
        });
    }
    for f in order {
        let ns = nanos(f.ts);
        block(&mut out, EPB, |b| {
            put32(b, ids[&f.point.to_string()]);
            put32(b, (ns >> 32) as u32);
            put32(b, ns as u32);
            put32(b, f.data.len() as u32);
            put32(b, f.data.len() as u32);
            b.extend_from_slice(&f.data);
            pad(b);
        });
    }
    out
}

fn nanos(d: Duration) -> u64 {
    d.as_secs() * 1_000_000_000 + u64::from(d.subsec_nanos())
}

/// A block: its type, its total length before and after the body `fill` writes.
fn block(out: &mut Vec<u8>, kind: u32, fill: impl FnOnce(&mut Vec<u8>)) {
    let mut body = vec![];
    fill(&mut body);
    let len = (body.len() + 12) as u32;
    put32(out, kind);
    put32(out, len);
    out.extend_from_slice(&body);
    put32(out, len);
}

fn option(b: &mut Vec<u8>, code: u16, value: &[u8]) {
    put16(b, code);
    put16(b, value.len() as u16);
    b.extend_from_slice(value);
    pad(b);
}

fn pad(b: &mut Vec<u8>) {
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
}

fn put16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

/// The interfaces named in a pcapng (`if_name` of each interface description, in order) and
/// how many packets each has: what a test checks a merged capture against.
pub fn interfaces(bytes: &[u8]) -> Result<Vec<(String, usize)>, String> {
    let mut out: Vec<(String, usize)> = vec![];
    let mut at = 0;
    let u32_at = |i: usize| -> Result<u32, String> {
        bytes.get(i..i + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok_or(format!("cut at byte {i}"))
    };
    while at < bytes.len() {
        let (kind, len) = (u32_at(at)?, u32_at(at + 4)? as usize);
        if len < 12 || !len.is_multiple_of(4) || at + len > bytes.len() {
            return Err(format!("block at byte {at}: length {len}"));
        }
        match kind {
            IDB => {
                let mut o = at + 16;
                let mut name = String::new();
                while o + 4 <= at + len - 4 {
                    let code = u16::from_le_bytes([bytes[o], bytes[o + 1]]);
                    let n = usize::from(u16::from_le_bytes([bytes[o + 2], bytes[o + 3]]));
                    if code == OPT_END {
                        break;
                    }
                    if code == OPT_IF_NAME {
                        name = String::from_utf8_lossy(bytes.get(o + 4..o + 4 + n).unwrap_or_default()).into_owned();
                    }
                    o += 4 + n.div_ceil(4) * 4;
                }
                out.push((name, 0));
            }
            EPB => {
                let id = u32_at(at + 8)? as usize;
                out.get_mut(id).ok_or(format!("packet of interface {id}, which is not described"))?.1 += 1;
            }
            _ => {}
        }
        at += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(point: &str, ms: u64, data: &[u8]) -> Frame {
        Frame {
            point: point.parse().unwrap(),
            linktype: pcap::Linktype::ETHERNET,
            ts: Duration::from_millis(ms),
            data: data.to_vec(),
        }
    }

    /// libpcap reads it back: every packet, in time order across interfaces, with its bytes and
    /// its nanosecond timestamp; the interfaces are named `netns/iface`.
    #[test]
    fn a_merged_capture_reads_back_with_every_interface_and_packet() {
        let frames = vec![
            frame("host/eth0", 30, &[3; 60]),
            frame("c1/eth0", 10, &[1; 61]),
            frame("host/eth0", 20, &[2; 62]),
            frame("c1/eth0", 40, &[4; 63]),
        ];
        let bytes = write(&frames);
        assert_eq!(interfaces(&bytes).unwrap(), [("c1/eth0".to_string(), 2), ("host/eth0".to_string(), 2)]);
        let path = std::env::temp_dir().join(format!("netpath-pcapng-test-{}.pcapng", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let mut cap = pcap::Capture::from_file(&path).unwrap_or_else(|e| panic!("libpcap: {e}"));
        let mut read = vec![];
        while let Ok(p) = cap.next_packet() {
            read.push((p.header.ts.tv_sec, p.header.ts.tv_usec, p.data.to_vec()));
        }
        let _ = std::fs::remove_file(&path);
        // libpcap scales a nanosecond capture to microseconds for a reader that asked for them.
        let want: Vec<_> = [(10, 1u8, 61), (20, 2, 62), (30, 3, 60), (40, 4, 63)]
            .into_iter()
            .map(|(ms, byte, len)| (0, ms * 1000, vec![byte; len]))
            .collect();
        assert_eq!(read, want);
    }
}
