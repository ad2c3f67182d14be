//! Which packet an event without payload shows: the correlation key.
//!
//! NFLOG records and captured frames carry the packet, and with it the probe's nonce. nf_tables
//! trace events carry only the headers (and the first 20 bytes of the transport header), kernel-log
//! lines only what `nf_log_syslog` prints. Such an event is joined to a probe through a frame the
//! lab's captures saw with the same [`Key`]: the header fields that stay the same across hooks,
//! routers and NAT, of both families alike, so every source computes it from what it has.
//!
//! | family | fields | why these |
//! |---|---|---|
//! | IPv4 | IP id, protocol | NAT keeps the id; Linux gives every packet of a flow a new one |
//! | IPv6 | flow label, payload length, protocol | there is no IP id; the sender sets the flow label once per flow (`net.ipv6.auto_flowlabels`) and neither routers nor NAT66 touch it, nor the length |
//!
//! and then, per protocol:
//!
//! | protocol | fields |
//! |---|---|
//! | ICMP | type, sequence (IPv4: not the echo id, which NAT may rewrite like a port) |
//! | ICMPv6 | type, echo id, sequence (an IPv6 echo is told from another by its id, as the id of IPv4 tells its packets) |
//! | TCP | flags, sequence and acknowledgement numbers (which also tell apart SYN-ACKs, whose IPv4 id Linux sets to 0) |
//! | UDP and others | nothing more: ports are not part of it, since NAT rewrites them between two hooks (a port mapping's DNAT, MASQUERADE's source port) |
//!
//! Where an event carries bytes after its transport header (an nf_tables trace event of an ICMP
//! echo or a UDP datagram: 12 bytes of payload, the start of the nonce), they must occur in the
//! frame too: two UDP datagrams of the same length on one flow, or two crafted IPv6 packets with
//! flow label 0, are told apart by them.
//!
//! A key is not unique: an IPv4 id has 16 bits, and a run of thousands of UDP datagrams has
//! requests whose id an answer (or another probe's request) also had. The evidence join
//! ([`crate::evidence::attribute`]) tells such packets apart by what else the event shows (its
//! addresses and ports, its nf_tables trace id, when it was read), and where nothing does, the
//! run has no verdict (`evidence incomplete`): an event given to the wrong packet would put its
//! hook into the wrong path, one dropped would make a path look shorter. The nonce a source
//! records on its events ([`Nonces::get`], used to place kernel-log lines) is `None` for a key
//! that still names two packets' nonces ([`Index::get`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::evidence::Frame;
use crate::evidence::packet::{L4, PacketInfo};

/// What identifies one packet across hooks and NAT, family by family (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    V4 { ip_id: u16, proto: u8, l4: Transport },
    V6 { flow_label: u32, len: u16, proto: u8, l4: Transport },
}

/// The part of a transport header NAT leaves alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Icmp { kind: u8, id: Option<u16>, seq: u16 },
    Tcp { flags: String, seq: u32, ack: u32 },
    Other,
}

impl Key {
    /// The key of a packet; `None` when the headers that make it are unknown (an IPv4 line
    /// without `ID=`, an ebtables line before it adopted the identity of its iptables line).
    pub fn of(info: &PacketInfo) -> Option<Key> {
        let v6 = matches!(info.src.or(info.dst), Some(IpAddr::V6(_)));
        let l4 = match &info.l4 {
            L4::Icmp { kind, id, seq, .. } => {
                Transport::Icmp { kind: *kind, id: id.filter(|_| v6), seq: seq.unwrap_or(0) }
            }
            L4::Tcp { flags, seq, ack, .. } => {
                Transport::Tcp { flags: flags.clone(), seq: seq.unwrap_or(0), ack: ack.unwrap_or(0) }
            }
            _ => Transport::Other,
        };
        let proto = info.proto?;
        Some(match v6 {
            false => Key::V4 { ip_id: info.ip_id?, proto, l4 },
            true => Key::V6 { flow_label: info.flow_label?, len: info.len?, proto, l4 },
        })
    }
}

/// Values by the key of the frames they were learnt from; the frames' bytes are kept to check an
/// event's payload start against.
#[derive(Debug)]
pub struct Index<V> {
    entries: BTreeMap<Key, Vec<(Vec<u8>, V)>>,
}

impl<V> Default for Index<V> {
    fn default() -> Self {
        Index { entries: BTreeMap::new() }
    }
}

impl<V: PartialEq> Index<V> {
    /// Learn `value` for the packet of `frame` (its key and bytes).
    pub fn insert(&mut self, key: Key, frame: &[u8], value: V) {
        let entries = self.entries.entry(key).or_default();
        if !entries.iter().any(|(bytes, v)| *v == value && bytes == frame) {
            entries.push((frame.to_vec(), value));
        }
    }

    /// The value of the packet with `key` whose frames hold `head` (the bytes an event carries
    /// after its transport header, where it does); `None` when no frame or frames of two
    /// different values fit.
    pub fn get(&self, key: &Key, head: Option<&[u8]>) -> Option<&V> {
        let fits = |bytes: &[u8]| head.is_none_or(|h| h.is_empty() || crate::evidence::packet::contains(bytes, h));
        let mut found = self.entries.get(key)?.iter().filter(|(bytes, _)| fits(bytes)).map(|(_, v)| v);
        let first = found.next()?;
        found.all(|v| v == first).then_some(first)
    }
}

/// Resolves headers, and the payload bytes an event carries after them where it does, to the
/// nonce of the probe packet they belong to.
pub type NonceOf<'a> = &'a dyn Fn(&PacketInfo, Option<&[u8]>) -> Option<Vec<u8>>;

/// Probe nonces by the key of the captured frames that carry them, and the keys of every
/// captured frame, nonce or not: what the payload-less trace sources join their events with.
#[derive(Debug, Default)]
pub struct Nonces {
    nonces: Index<Vec<u8>>,
    seen: BTreeSet<Key>,
}

impl Nonces {
    pub fn from_frames(frames: &[Frame]) -> Nonces {
        let mut out = Nonces::default();
        for f in frames {
            let Some(key) = f.info().as_ref().and_then(Key::of) else { continue };
            if let Some(nonce) = crate::probe::find_nonce(&f.data) {
                out.nonces.insert(key.clone(), &f.data, nonce);
            }
            out.seen.insert(key);
        }
        out
    }

    /// The nonce of the probe packet with these headers and, where the event has them, these
    /// first payload bytes.
    pub fn get(&self, p: &PacketInfo, head: Option<&[u8]>) -> Option<Vec<u8>> {
        self.nonces.get(&Key::of(p)?, head).cloned()
    }

    /// Whether a frame with these headers was captured in the lab.
    pub fn seen(&self, p: &PacketInfo) -> bool {
        Key::of(p).is_some_and(|k| self.seen.contains(&k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(src: &str, flow_label: u32, len: u16, l4: L4) -> PacketInfo {
        let proto = match l4 {
            L4::Icmp { .. } => 58,
            L4::Tcp { .. } => 6,
            _ => 17,
        };
        PacketInfo {
            src: Some(src.parse().unwrap()),
            dst: Some("fd00:2::2".parse().unwrap()),
            proto: Some(proto),
            len: Some(len),
            flow_label: Some(flow_label),
            l4,
            ..Default::default()
        }
    }

    fn echo(id: u16, seq: u16) -> L4 {
        L4::Icmp { kind: 128, code: 0, id: Some(id), seq: Some(seq) }
    }

    #[test]
    fn an_ipv6_packet_keeps_its_key_across_nat66_and_hops() {
        let sent = v6("fd00:1::2", 149156, 88, echo(31816, 1));
        // MASQUERADE rewrote the source, the router the hop limit: the same packet.
        let natted = PacketInfo { src: Some("fd00:2::1".parse().unwrap()), ttl: Some(63), ..sent.clone() };
        assert_eq!(Key::of(&sent), Key::of(&natted));
        // A port mapping's DNAT rewrote the destination port of a UDP datagram: still the same.
        let udp = v6("fd00:1::2", 7, 60, L4::Udp { sport: 40000, dport: 8080 });
        let dnat = PacketInfo { l4: L4::Udp { sport: 40000, dport: 80 }, ..udp.clone() };
        assert_eq!(Key::of(&udp), Key::of(&dnat));
        // No flow label or length known: no key, never a key that matches everything.
        assert_eq!(Key::of(&PacketInfo { flow_label: None, ..sent.clone() }), None);
        assert_eq!(Key::of(&PacketInfo { len: None, ..sent }), None);
    }

    #[test]
    fn two_probes_at_once_with_the_same_ids_differ_by_the_key() {
        // Two namespaces ping at once with the same echo id and sequence (each its own socket):
        // the flow labels differ.
        let a = v6("fd00:1::2", 149156, 88, echo(7, 1));
        let b = v6("fd00:1::3", 930166, 88, echo(7, 1));
        assert_ne!(Key::of(&a), Key::of(&b));
        // One socket, two echoes: the id stays, the sequence tells them apart.
        assert_ne!(Key::of(&a), Key::of(&v6("fd00:1::2", 149156, 88, echo(7, 2))));
        // Two TCP connections with the same ports differ by their sequence numbers.
        let syn = |seq| L4::Tcp { sport: 40000, dport: 80, flags: "S".into(), seq: Some(seq), ack: Some(0) };
        assert_ne!(Key::of(&v6("fd00:1::2", 5, 80, syn(1000))), Key::of(&v6("fd00:1::2", 5, 80, syn(2000))));
        // IPv4: the IP id, and an ICMP echo id is not part of it (NAT may rewrite it).
        let v4 = |ip_id, id| PacketInfo {
            src: Some("10.0.0.1".parse().unwrap()),
            proto: Some(1),
            ip_id: Some(ip_id),
            l4: L4::Icmp { kind: 8, code: 0, id: Some(id), seq: Some(1) },
            ..Default::default()
        };
        assert_eq!(Key::of(&v4(19731, 7)), Key::of(&v4(19731, 9)));
        assert_ne!(Key::of(&v4(19731, 7)), Key::of(&v4(19732, 7)));
        assert!(matches!(Key::of(&v4(1, 1)), Some(Key::V4 { .. })));
    }

    #[test]
    fn the_payload_start_an_event_carries_tells_apart_what_the_headers_do_not() {
        // Two crafted UDP datagrams of one size, flow label 0, the same ports: one key.
        let p = v6("fd00:1::2", 0, 64, L4::Udp { sport: 4000, dport: 53 });
        let key = Key::of(&p).unwrap();
        let mut index = Index::default();
        index.insert(key.clone(), b"....netpath-a1b2c3d4e5f60708", "first");
        index.insert(key.clone(), b"....netpath-ffeeddccbbaa9988", "second");
        // The event's 12 bytes after the UDP header are the start of one nonce.
        assert_eq!(index.get(&key, Some(b"netpath-a1b2")), Some(&"first"));
        assert_eq!(index.get(&key, Some(b"netpath-ffee")), Some(&"second"));
        // A kernel-log line carries no payload: two packets fit, so it names none.
        assert_eq!(index.get(&key, None), None);
        assert_eq!(index.get(&key, Some(b"netpath-0000")), None);
        // The same packet seen at two capture points is one value.
        let mut one = Index::default();
        one.insert(key.clone(), b"netpath-a1b2c3d4e5f60708", 1);
        one.insert(key.clone(), b"xxnetpath-a1b2c3d4e5f60708", 1);
        assert_eq!(one.get(&key, None), Some(&1));
    }
}
