//! A header summary of one packet, the common ground of pcap frames, NFLOG payloads,
//! nf_tables trace headers and the seed articles' log lines.

use std::fmt;
use std::net::IpAddr;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use serde::{Deserialize, Serialize};

/// A MAC address, printed and written in files as `02:42:c0:a8:00:02`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl std::str::FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(format!("`{s}` is not a MAC address (want six hex bytes like 02:42:c0:a8:00:02)"));
        }
        let mut out = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            out[i] = u8::from_str_radix(p, 16)
                .map_err(|_| format!("`{s}` is not a MAC address: `{p}` is not a hex byte"))?;
        }
        Ok(Mac(out))
    }
}

/// Transport-layer facts, as far as they are known.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum L4 {
    #[default]
    Unknown,
    Icmp {
        kind: u8,
        code: u8,
        id: Option<u16>,
        seq: Option<u16>,
    },
    /// `seq`/`ack` survive NAT untouched, which is how a connection's packets are found at every
    /// capture point and in every trace event.
    Tcp {
        sport: u16,
        dport: u16,
        flags: String,
        seq: Option<u32>,
        ack: Option<u32>,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
}

/// What a packet carried at one point of its path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PacketInfo {
    pub mac_src: Option<Mac>,
    pub mac_dst: Option<Mac>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// IP protocol number.
    pub proto: Option<u8>,
    pub ttl: Option<u8>,
    pub ip_id: Option<u16>,
    pub len: Option<u16>,
    pub tos: Option<u8>,
    pub dont_fragment: bool,
    /// The IPv6 flow label: set once per flow by the sender, left alone by routers and NAT66,
    /// so part of what identifies an IPv6 packet across hooks ([`crate::evidence::key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_label: Option<u32>,
    pub l4: L4,
}

impl PacketInfo {
    /// Summarise an Ethernet frame (what a pcap on a veth or bridge captures).
    pub fn from_ethernet(frame: &[u8]) -> Option<PacketInfo> {
        let sliced = SlicedPacket::from_ethernet(frame).ok()?;
        let mut info = Self::from_sliced(&sliced);
        if let Some(etherparse::LinkSlice::Ethernet2(eth)) = &sliced.link {
            info.mac_src = Some(Mac(eth.source()));
            info.mac_dst = Some(Mac(eth.destination()));
        }
        Some(info)
    }

    /// Summarise a packet that starts at its IP header (NFLOG payloads, nf_tables network headers).
    pub fn from_ip(packet: &[u8]) -> Option<PacketInfo> {
        let sliced = SlicedPacket::from_ip(packet).ok()?;
        Some(Self::from_sliced(&sliced))
    }

    /// Summarise an IP header followed by the start of its transport header, as nf_tables
    /// traces carry them (the rest of the packet is not there, so full parsing would fail). An
    /// IPv6 header may bring extension headers before the transport header.
    pub fn from_ip_header(bytes: &[u8]) -> Option<PacketInfo> {
        let (mut info, rest) = match bytes.first()? >> 4 {
            4 => {
                let (h, rest) = etherparse::Ipv4Header::from_slice(bytes).ok()?;
                let info = PacketInfo {
                    src: Some(IpAddr::V4(h.source.into())),
                    dst: Some(IpAddr::V4(h.destination.into())),
                    proto: Some(h.protocol.0),
                    ttl: Some(h.time_to_live),
                    ip_id: Some(h.identification),
                    len: Some(h.total_len),
                    tos: Some((h.dscp.value() << 2) | h.ecn.value()),
                    dont_fragment: h.dont_fragment,
                    ..Default::default()
                };
                (info, rest)
            }
            6 => {
                let (h, rest) = etherparse::Ipv6Header::from_slice(bytes).ok()?;
                let (_, proto, rest) = etherparse::Ipv6Extensions::from_slice(h.next_header, rest).ok()?;
                let info = PacketInfo {
                    src: Some(IpAddr::V6(h.source.into())),
                    dst: Some(IpAddr::V6(h.destination.into())),
                    proto: Some(proto.0),
                    ttl: Some(h.hop_limit),
                    len: Some(h.payload_length.saturating_add(40)),
                    tos: Some(h.traffic_class),
                    flow_label: Some(h.flow_label.value()),
                    ..Default::default()
                };
                (info, rest)
            }
            _ => return None,
        };
        info.l4 = transport_head(info.proto.unwrap_or_default(), rest);
        Some(info)
    }

    fn from_sliced(sliced: &SlicedPacket<'_>) -> PacketInfo {
        let mut info = PacketInfo::default();
        match &sliced.net {
            Some(NetSlice::Ipv4(v4)) => {
                let h = v4.header();
                info.src = Some(IpAddr::V4(h.source_addr()));
                info.dst = Some(IpAddr::V4(h.destination_addr()));
                info.proto = Some(h.protocol().0);
                info.ttl = Some(h.ttl());
                info.ip_id = Some(h.identification());
                info.len = Some(h.total_len());
                info.tos = Some((h.dcp().value() << 2) | h.ecn().value());
                info.dont_fragment = h.dont_fragment();
            }
            Some(NetSlice::Ipv6(v6)) => {
                let h = v6.header();
                info.src = Some(IpAddr::V6(h.source_addr()));
                info.dst = Some(IpAddr::V6(h.destination_addr()));
                info.proto = Some(v6.payload().ip_number.0);
                info.ttl = Some(h.hop_limit());
                info.len = Some(h.payload_length().saturating_add(40));
                info.tos = Some(h.traffic_class());
                info.flow_label = Some(h.flow_label().value());
            }
            _ => {}
        }
        info.l4 = match &sliced.transport {
            Some(TransportSlice::Icmpv4(icmp)) => {
                let (id, seq) = match icmp.icmp_type() {
                    etherparse::Icmpv4Type::EchoRequest(e) | etherparse::Icmpv4Type::EchoReply(e) => {
                        (Some(e.id), Some(e.seq))
                    }
                    _ => (None, None),
                };
                L4::Icmp { kind: icmp.type_u8(), code: icmp.code_u8(), id, seq }
            }
            Some(TransportSlice::Icmpv6(icmp)) => {
                let (id, seq) = match icmp.icmp_type() {
                    etherparse::Icmpv6Type::EchoRequest(e) | etherparse::Icmpv6Type::EchoReply(e) => {
                        (Some(e.id), Some(e.seq))
                    }
                    _ => (None, None),
                };
                L4::Icmp { kind: icmp.type_u8(), code: icmp.code_u8(), id, seq }
            }
            Some(TransportSlice::Tcp(tcp)) => L4::Tcp {
                sport: tcp.source_port(),
                dport: tcp.destination_port(),
                flags: tcp_flags(tcp),
                seq: Some(tcp.sequence_number()),
                ack: Some(tcp.acknowledgment_number()),
            },
            Some(TransportSlice::Udp(udp)) => L4::Udp { sport: udp.source_port(), dport: udp.destination_port() },
            _ => L4::Unknown,
        };
        info
    }

    /// TCP/UDP source and destination ports.
    pub fn ports(&self) -> (Option<u16>, Option<u16>) {
        match self.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => (Some(sport), Some(dport)),
            _ => (None, None),
        }
    }

    /// Source and destination as `ip`, `ip:port` or `[ipv6]:port`.
    pub fn endpoints(&self) -> (String, String) {
        let ip = |a: Option<IpAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "?".into());
        let with_port = |a: Option<IpAddr>, port: u16| match a {
            Some(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
            _ => format!("{}:{port}", ip(a)),
        };
        match &self.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => {
                (with_port(self.src, *sport), with_port(self.dst, *dport))
            }
            _ => (ip(self.src), ip(self.dst)),
        }
    }
}

/// The transport facts of the first bytes of a transport header of protocol `proto`.
fn transport_head(proto: u8, rest: &[u8]) -> L4 {
    let be16 = |b: &[u8], i: usize| b.get(i..i + 2).map(|x| u16::from_be_bytes([x[0], x[1]]));
    let be32 = |b: &[u8], i: usize| b.get(i..i + 4).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]));
    match (proto, be16(rest, 0), be16(rest, 2)) {
        // Echo request and reply (ICMP 8/0, ICMPv6 128/129) carry an id and a sequence number.
        (1 | 58, _, _) if rest.len() >= 2 => {
            let (id, seq) = if matches!((proto, rest[0]), (1, 0 | 8) | (58, 128 | 129)) {
                (be16(rest, 4), be16(rest, 6))
            } else {
                (None, None)
            };
            L4::Icmp { kind: rest[0], code: rest[1], id, seq }
        }
        (6, Some(sport), Some(dport)) if rest.len() >= 14 => {
            L4::Tcp { sport, dport, flags: tcp_flag_letters(rest[13]), seq: be32(rest, 4), ack: be32(rest, 8) }
        }
        (17, Some(sport), Some(dport)) => L4::Udp { sport, dport },
        _ => L4::Unknown,
    }
}

fn tcp_flags(tcp: &etherparse::TcpSlice<'_>) -> String {
    let mut s = String::new();
    for (on, c) in [(tcp.syn(), 'S'), (tcp.fin(), 'F'), (tcp.rst(), 'R'), (tcp.psh(), 'P'), (tcp.ack(), '.')] {
        if on {
            s.push(c);
        }
    }
    s
}

/// TCP flags of the flags byte, in the letters [`PacketInfo`] uses.
fn tcp_flag_letters(b: u8) -> String {
    [(0x02, 'S'), (0x01, 'F'), (0x04, 'R'), (0x08, 'P'), (0x10, '.')]
        .iter()
        .filter(|(bit, _)| b & bit != 0)
        .map(|(_, c)| *c)
        .collect()
}

impl fmt::Display for PacketInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (src, dst) = self.endpoints();
        write!(f, "{src} > {dst}")?;
        match &self.l4 {
            L4::Icmp { kind, code, id, seq } => {
                write!(f, " icmp type {kind} code {code}")?;
                if let (Some(id), Some(seq)) = (id, seq) {
                    write!(f, " id {id} seq {seq}")?;
                }
                Ok(())
            }
            L4::Tcp { flags, .. } => write!(f, " tcp [{flags}]"),
            L4::Udp { .. } => write!(f, " udp"),
            L4::Unknown => match self.proto {
                Some(p) => write!(f, " proto {p}"),
                None => Ok(()),
            },
        }
    }
}

/// Whether `needle` occurs in `haystack`: how a probe's nonce is found in any capture.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let m: Mac = "02:42:c0:a8:00:02".parse().unwrap();
        assert_eq!(m.to_string(), "02:42:c0:a8:00:02");
        assert!("02:42".parse::<Mac>().is_err());
        assert!("zz:42:c0:a8:00:02".parse::<Mac>().is_err());
    }

    #[test]
    fn summarises_an_icmp_echo_from_its_ip_header() {
        // The echo request of FACTS.md's NFLOG capture: 192.168.0.2 > 10.171.77.30, id 2113 seq 1.
        let hex = "45000054 90eb4000 4001914a c0a80002 0aab4d1e 080092f4 08410001";
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .flat_map(|w| (0..w.len()).step_by(2).map(move |i| u8::from_str_radix(&w[i..i + 2], 16).unwrap()))
            .collect();
        let mut packet = bytes.clone();
        packet.resize(84, 0);
        let info = PacketInfo::from_ip(&packet).unwrap();
        assert_eq!(info.src.unwrap().to_string(), "192.168.0.2");
        assert_eq!(info.dst.unwrap().to_string(), "10.171.77.30");
        assert_eq!(info.ttl, Some(64));
        assert_eq!(info.ip_id, Some(0x90eb));
        assert!(info.dont_fragment);
        assert_eq!(info.l4, L4::Icmp { kind: 8, code: 0, id: Some(2113), seq: Some(1) });
        assert_eq!(info.to_string(), "192.168.0.2 > 10.171.77.30 icmp type 8 code 0 id 2113 seq 1");
    }

    #[test]
    fn summarises_ipv6_frames_and_headers() {
        // An ICMPv6 echo request fd00:a::2 > fd00:b::2, id 7 seq 1, hop limit 64, in Ethernet.
        let nonce = b"netpath-0011223344556677";
        let eth = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(
                "fd00:a::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
                "fd00:b::2".parse::<std::net::Ipv6Addr>().unwrap().octets(),
                64,
            )
            .icmpv6_echo_request(7, 1);
        let mut frame = vec![];
        eth.write(&mut frame, nonce).unwrap();
        let info = PacketInfo::from_ethernet(&frame).unwrap();
        assert_eq!(info.to_string(), "fd00:a::2 > fd00:b::2 icmp type 128 code 0 id 7 seq 1");
        assert_eq!((info.ttl, info.proto, info.len), (Some(64), Some(58), Some(40 + 8 + 24)));
        // nf_tables carries the network header and the start of the transport header only.
        let header = PacketInfo::from_ip_header(&frame[14..14 + 40 + 8]).unwrap();
        assert_eq!(
            PacketInfo { mac_src: info.mac_src, mac_dst: info.mac_dst, ..header.clone() },
            PacketInfo { tos: Some(0), ..info }
        );

        // A TCP SYN over IPv6 prints its ports bracketed.
        let syn = etherparse::PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 3).tcp(40000, 80, 1000, 1024).syn();
        let mut packet = vec![];
        syn.write(&mut packet, &[]).unwrap();
        let info = PacketInfo::from_ip_header(&packet).unwrap();
        assert_eq!(info.l4, L4::Tcp { sport: 40000, dport: 80, flags: "S".into(), seq: Some(1000), ack: Some(0) });
        assert_eq!(info.endpoints().0, "[fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd]:40000");
        assert_eq!(PacketInfo::from_ip(&packet).unwrap().l4, info.l4);
        assert_eq!(PacketInfo::from_ip_header(&[0x20, 0, 0]), None, "neither IPv4 nor IPv6");
    }

    #[test]
    fn finds_a_nonce() {
        assert!(contains(b"xxNETPATHabc", b"NETPATHa"));
        assert!(!contains(b"xxNETPATHabc", b"NETPATHb"));
        assert!(!contains(b"abc", b""));
    }
}
