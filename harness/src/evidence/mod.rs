//! Evidence of one probe: for each packet of the flow, request and reply, the hooks it met
//! (per netns, in order) and what it carried at each capture point. Joined by payload nonce.

pub mod conntrack;
pub mod packet;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::evidence::packet::PacketInfo;
use crate::observe::trace::TraceEvent;
use crate::probe::{Sent, find_nonce};
use crate::scenario::{CapturePoint, Direction};

pub mod key;
use key::Key;

/// A frame a pcap saw.
#[derive(Debug, Clone)]
pub struct Frame {
    pub point: CapturePoint,
    /// The capture's link layer: Ethernet on veths and bridges, raw IP (no link-layer header,
    /// so no MACs) on TUN and WireGuard interfaces.
    pub linktype: pcap::Linktype,
    pub ts: Duration,
    pub data: Vec<u8>,
}

impl Frame {
    /// The packet's header summary, read according to the capture's link layer.
    pub fn info(&self) -> Option<PacketInfo> {
        summarize(self.linktype, &self.data)
    }

    /// Whether `nonce` occurs anywhere in the frame's bytes, whatever the packet is (also inside
    /// an encapsulation no [`PacketInfo`] looks into).
    pub fn carries(&self, nonce: &[u8]) -> bool {
        crate::evidence::packet::contains(&self.data, nonce)
    }
}

/// DLT_RAW as libpcap reports it on Linux (12; 14 on OpenBSD), and LINKTYPE_RAW as pcap files
/// store it (101): the packet starts at its IP header.
const RAW_IP: [i32; 3] = [12, 14, 101];

/// Summarise a captured frame of link type `linktype`: Ethernet (veth, bridge), raw IP (TUN,
/// WireGuard: `link-type RAW (Raw IP)` in tcpdump's words), IPv4/IPv6, or Linux cooked capture.
/// `None` for other link types and for frames that are not IP.
pub fn summarize(linktype: pcap::Linktype, data: &[u8]) -> Option<PacketInfo> {
    match linktype {
        pcap::Linktype::ETHERNET => PacketInfo::from_ethernet(data),
        pcap::Linktype::IPV4 | pcap::Linktype::IPV6 => PacketInfo::from_ip(data),
        pcap::Linktype(t) if RAW_IP.contains(&t) => PacketInfo::from_ip(data),
        // SLL: a 16-byte header ending in the protocol; SLL2: 20 bytes, protocol first.
        pcap::Linktype::LINUX_SLL => data.get(16..).and_then(PacketInfo::from_ip),
        pcap::Linktype::LINUX_SLL2 => data.get(20..).and_then(PacketInfo::from_ip),
        _ => None,
    }
}

/// A trace event with the time the collector got it.
#[derive(Debug, Clone)]
pub struct TimedEvent {
    pub ts: Duration,
    pub event: TraceEvent,
}

/// Where one packet was seen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PacketEvidence {
    /// Hooks in the order the packet met them, per netns.
    pub path: BTreeMap<String, Vec<TraceEvent>>,
    /// What it carried at each capture point (first sighting; a bridge port may show it once).
    pub seen: BTreeMap<CapturePoint, PacketInfo>,
}

/// One packet of the flow and its reply.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// 1-based position in the flow.
    pub packet: u16,
    #[serde(serialize_with = "hex")]
    pub nonce: Vec<u8>,
    pub request: PacketEvidence,
    pub reply: PacketEvidence,
    /// Whether the sender got the reply.
    pub replied: bool,
    /// Which server answered (udp, tcp probes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

fn hex<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(v))
}

impl Exchange {
    pub fn of(&self, d: Direction) -> &PacketEvidence {
        match d {
            Direction::Request => &self.request,
            Direction::Reply => &self.reply,
        }
    }

    fn of_mut(&mut self, d: Direction) -> &mut PacketEvidence {
        match d {
            Direction::Request => &mut self.request,
            Direction::Reply => &mut self.reply,
        }
    }
}

/// The frames of a run, each parsed once for every probe's [`join`]: its summary and the nonce
/// it carries.
pub struct Parsed<'a> {
    frames: &'a [Frame],
    infos: Vec<Option<PacketInfo>>,
    nonces: Vec<Option<Vec<u8>>>,
}

impl<'a> Parsed<'a> {
    pub fn new(frames: &'a [Frame]) -> Parsed<'a> {
        Parsed {
            frames,
            infos: frames.iter().map(Frame::info).collect(),
            nonces: frames.iter().map(|f| find_nonce(&f.data)).collect(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&'a Frame, &PacketInfo, Option<&[u8]>)> {
        self.frames
            .iter()
            .zip(&self.infos)
            .zip(&self.nonces)
            .filter_map(|((f, info), nonce)| Some((f, info.as_ref()?, nonce.as_deref())))
    }
}

/// Gather the evidence of each packet a probe sent from everything observed: frames and trace
/// events that carry the packet's nonce or its TCP sequence numbers are classified directly;
/// trace events that carry headers only (nf_tables, kernel log) are matched by the header
/// fields NAT leaves alone, learnt from the frames.
pub fn join(sent: &mut [Sent], frames: &Parsed<'_>, events: &BTreeMap<String, Vec<TimedEvent>>) -> Vec<Exchange> {
    let learners: Vec<usize> = (0..sent.len()).filter(|&i| sent[i].matcher.learns()).collect();
    if !learners.is_empty() {
        for (f, info, nonce) in frames.iter() {
            for &i in &learners {
                sent[i].learn(info, &f.data, f.ts, nonce);
            }
        }
        for &i in &learners {
            sent[i].matcher.settle();
        }
    }
    let by_nonce: BTreeMap<&[u8], usize> = sent.iter().enumerate().map(|(i, s)| (s.nonce.as_slice(), i)).collect();
    let unnonced: Vec<usize> = (0..sent.len()).filter(|&i| sent[i].matcher.without_nonce()).collect();
    let classify = |info: &PacketInfo, bytes: &[u8], nonce: Option<&[u8]>| -> Option<(usize, Direction)> {
        match nonce.and_then(|n| by_nonce.get(n).copied()) {
            Some(i) => sent[i].classify(info, bytes).map(|d| (i, d)),
            None => unnonced.iter().find_map(|&i| sent[i].classify(info, bytes).map(|d| (i, d))),
        }
    };

    let mut out: Vec<Exchange> = sent
        .iter()
        .enumerate()
        .map(|(i, s)| Exchange {
            packet: i as u16 + 1,
            nonce: s.nonce.clone(),
            request: PacketEvidence::default(),
            reply: PacketEvidence::default(),
            replied: s.replied,
            answer: s.answer.clone(),
        })
        .collect();
    let mut by_header: BTreeMap<Key, (usize, Direction)> = BTreeMap::new();
    for (f, info, nonce) in frames.iter() {
        let Some((i, d)) = classify(info, &f.data, nonce) else { continue };
        if let Some(key) = Key::of(info) {
            by_header.insert(key, (i, d));
        }
        let pe = out[i].of_mut(d);
        pe.seen.entry(f.point.clone()).or_insert_with(|| info.clone());
    }
    for (netns, evs) in events {
        for te in evs {
            let ev = &te.event;
            let hit = match &ev.payload {
                Some(bytes) => classify(&ev.packet, bytes, find_nonce(bytes).as_deref()),
                None => classify(&ev.packet, &[], None)
                    .or_else(|| Key::of(&ev.packet).and_then(|k| by_header.get(&k).copied())),
            };
            if let Some((i, d)) = hit {
                out[i].of_mut(d).path.entry(netns.clone()).or_default().push(ev.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ICMP echo request 10.0.0.1 > 10.0.0.2 carrying `nonce`, from its IPv4 header on.
    fn echo(nonce: &[u8]) -> Vec<u8> {
        let icmp = etherparse::Icmpv4Header::with_checksum(
            etherparse::Icmpv4Type::EchoRequest(etherparse::IcmpEchoHeader { id: 7, seq: 1 }),
            nonce,
        );
        let builder = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).icmpv4(icmp.icmp_type);
        let mut out = Vec::with_capacity(builder.size(nonce.len()));
        builder.write(&mut out, nonce).unwrap();
        out
    }

    #[test]
    fn raw_ip_captures_are_read_as_ip_and_carry_no_macs() {
        let nonce = crate::probe::new_nonce();
        let ip = echo(&nonce);
        // What a pcap on wg0 or a TUN gives: DLT_RAW (12 on Linux), LINKTYPE_RAW (101) in files.
        for lt in [pcap::Linktype(12), pcap::Linktype::RAW, pcap::Linktype::IPV4] {
            let info = summarize(lt, &ip).unwrap_or_else(|| panic!("{lt:?}"));
            assert_eq!(info.to_string(), "10.0.0.1 > 10.0.0.2 icmp type 8 code 0 id 7 seq 1");
            assert_eq!((info.mac_src, info.mac_dst), (None, None));
        }
        // Read as Ethernet, the same bytes are no such packet.
        assert_ne!(summarize(pcap::Linktype::ETHERNET, &ip).and_then(|i| i.src), Some("10.0.0.1".parse().unwrap()));
        // Linux cooked capture: 16 bytes of header before the packet.
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&0x0800u16.to_be_bytes());
        sll.extend_from_slice(&ip);
        assert_eq!(summarize(pcap::Linktype::LINUX_SLL, &sll).and_then(|i| i.dst), Some("10.0.0.2".parse().unwrap()));
        assert_eq!(summarize(pcap::Linktype(147), &ip), None, "a link type it does not know");

        // The evidence of a probe finds it at a wg0 capture point.
        let frame = Frame {
            point: "peer2/wg0".parse().unwrap(),
            linktype: pcap::Linktype(12),
            ts: Duration::ZERO,
            data: ip.clone(),
        };
        assert!(frame.carries(&nonce));
        let mut sent =
            [Sent { nonce: nonce.clone(), matcher: Box::new(crate::probe::icmp::Echo), replied: true, answer: None }];
        let frames = [frame];
        let ex = join(&mut sent, &Parsed::new(&frames), &BTreeMap::new());
        let seen = &ex[0].request.seen[&"peer2/wg0".parse::<CapturePoint>().unwrap()];
        assert_eq!(seen.src, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(seen.mac_src, None);
    }
}
