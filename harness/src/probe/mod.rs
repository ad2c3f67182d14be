//! Probes: real packets sent from inside a netns. Each carries a nonce or is pinned by fields
//! NAT leaves alone (TCP sequence numbers), so the same packet is found at every capture point
//! and in every trace event even after NAT rewrote its addresses.

pub mod frame;
pub mod icmp;
pub mod server;
pub mod tcp;
pub mod udp;
pub mod wait;

use std::net::{IpAddr, Ipv4Addr};

use crate::error::{Error, Result};
use crate::evidence::packet::{L4, PacketInfo, contains};
use crate::scenario::Direction;

/// The nonce of one packet: `netpath-` and 16 hex digits, unique per packet of a run.
pub fn new_nonce() -> Vec<u8> {
    format!("netpath-{:016x}", crate::random::u64()).into_bytes()
}

/// The nonce a packet carries, if it is a probe's.
pub fn find_nonce(data: &[u8]) -> Option<Vec<u8>> {
    const TAG: &[u8] = b"netpath-";
    let at = data.windows(TAG.len()).position(|w| w == TAG)?;
    let nonce = data.get(at..at + TAG.len() + 16)?;
    nonce[TAG.len()..].iter().all(u8::is_ascii_hexdigit).then(|| nonce.to_vec())
}

/// What a server sends back for a request: the request and who answered.
pub fn answer_for(request: &[u8], server: &str) -> Vec<u8> {
    let mut out = b"reply ".to_vec();
    out.extend_from_slice(request);
    out.extend_from_slice(format!(" from {server}").as_bytes());
    out
}

/// The server name in an answer to `nonce`, if `data` is one.
pub fn answer_from(data: &[u8], nonce: &[u8]) -> Option<String> {
    let mut head = b"reply ".to_vec();
    head.extend_from_slice(nonce);
    head.extend_from_slice(b" from ");
    let at = data.windows(head.len()).position(|w| w == head.as_slice())?;
    let rest = &data[at + head.len()..];
    let end = rest.iter().position(|b| !b.is_ascii_graphic()).unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// How a probe packet and its reply are recognised in a frame or a trace event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ident {
    /// ICMP echo: the nonce is in both; the request is type 8, the reply type 0.
    Echo,
    /// UDP: the nonce is in both; the reply is the server's answer.
    Datagram,
    /// A TCP connection from local port `sport` to `dst:dport`, opened at `since` (wall clock):
    /// found everywhere by its initial sequence number `isn` (NAT leaves it alone); the reply is
    /// the SYN-ACK acknowledging it. `isn` is learnt from the captures: from the request segment
    /// that carries the nonce (seq = isn + 1), or else from the first SYN with those ports sent
    /// after `since` (a later connection may reuse the local port).
    Connection { sport: u16, dst: IpAddr, dport: u16, since: std::time::Duration, isn: Option<u32> },
    /// A crafted segment with sequence number `seq` and the nonce as payload; the reply is
    /// whatever acknowledges it (SYN-ACK, or RST).
    Segment { seq: u32, len: u32 },
}

/// One packet a probe sent and what came back.
#[derive(Debug, Clone)]
pub struct Sent {
    pub nonce: Vec<u8>,
    pub ident: Ident,
    /// Whether the sender got the reply.
    pub replied: bool,
    /// Which server answered (udp, tcp).
    pub answer: Option<String>,
}

impl Sent {
    /// Learn what the captures alone can tell (a connection's initial sequence number) from a
    /// frame captured at `ts` that carries `nonce` (see [`find_nonce`]). `candidate` keeps the
    /// earliest fitting SYN seen so far.
    pub fn learn(
        &mut self,
        info: &PacketInfo,
        ts: std::time::Duration,
        nonce: Option<&[u8]>,
        candidate: &mut Option<(std::time::Duration, u32)>,
    ) {
        let Ident::Connection { sport, dst, dport, since, isn } = &mut self.ident else { return };
        let L4::Tcp { sport: s, dport: d, flags, seq: Some(seq), .. } = &info.l4 else { return };
        if !flags.contains('S') && nonce == Some(self.nonce.as_slice()) {
            *isn = Some(seq.wrapping_sub(1));
        } else if flags == "S"
            && s == sport
            && d == dport
            && info.dst == Some(*dst)
            && ts >= *since
            && candidate.is_none_or(|(t, _)| ts < t)
        {
            *candidate = Some((ts, *seq));
        }
    }

    /// Settle what `learn` saw: the nonce-carrying segment wins over the SYN by ports.
    pub fn settle(&mut self, candidate: Option<(std::time::Duration, u32)>) {
        if let Ident::Connection { isn: isn @ None, .. } = &mut self.ident {
            *isn = candidate.map(|(_, seq)| seq);
        }
    }

    /// Whether a packet (its header summary and, where known, its bytes) is this probe packet
    /// or its reply.
    pub fn classify(&self, info: &PacketInfo, bytes: &[u8]) -> Option<Direction> {
        match (&self.ident, &info.l4) {
            (Ident::Echo, L4::Icmp { kind, .. }) if contains(bytes, &self.nonce) => match kind {
                8 => Some(Direction::Request),
                0 => Some(Direction::Reply),
                _ => None,
            },
            (Ident::Datagram, L4::Udp { .. }) if contains(bytes, &self.nonce) => {
                Some(if answer_from(bytes, &self.nonce).is_some() { Direction::Reply } else { Direction::Request })
            }
            (Ident::Connection { isn: Some(isn), .. }, L4::Tcp { flags, seq, ack, .. }) => {
                if flags == "S" && *seq == Some(*isn) {
                    Some(Direction::Request)
                } else if flags.contains('S') && flags.contains('.') && *ack == Some(isn.wrapping_add(1)) {
                    Some(Direction::Reply)
                } else {
                    None
                }
            }
            (Ident::Segment { seq: s, len }, L4::Tcp { seq, ack, .. }) => {
                let acked = |a: u32| a == s.wrapping_add(1) || a == s.wrapping_add(1).wrapping_add(*len);
                if *seq == Some(*s) && (bytes.is_empty() || contains(bytes, &self.nonce)) {
                    Some(Direction::Request)
                } else if ack.is_some_and(acked) {
                    Some(Direction::Reply)
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

/// The IPv4 destination of a probe, or an error naming the probe.
pub fn ipv4(probe: &str, addr: IpAddr) -> Result<Ipv4Addr> {
    match addr {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => {
            Err(Error::Probe { probe: probe.to_string(), message: "IPv6 probes are not supported yet".into() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_name_their_server() {
        let nonce = new_nonce();
        let a = answer_for(&nonce, "ep1");
        assert_eq!(answer_from(&a, &nonce).as_deref(), Some("ep1"));
        assert_eq!(answer_from(&nonce, &nonce), None);
        assert_eq!(find_nonce(&a), Some(nonce));
    }

    fn tcp(flags: &str, seq: u32, ack: u32) -> PacketInfo {
        PacketInfo {
            dst: Some("2.2.2.2".parse().unwrap()),
            l4: L4::Tcp { sport: 40000, dport: 88, flags: flags.into(), seq: Some(seq), ack: Some(ack) },
            ..Default::default()
        }
    }

    #[test]
    fn a_connection_is_followed_by_sequence_numbers() {
        let mut s = Sent {
            nonce: vec![],
            ident: Ident::Connection {
                sport: 40000,
                dst: "2.2.2.2".parse().unwrap(),
                dport: 88,
                since: std::time::Duration::from_secs(10),
                isn: None,
            },
            replied: true,
            answer: None,
        };
        assert_eq!(s.classify(&tcp("S", 1000, 0), &[]), None, "nothing is known before the SYN is seen");
        let mut candidate = None;
        let t = std::time::Duration::from_secs;
        // An older connection from the same port, before this one began, is not it.
        s.learn(&tcp("S", 500, 0), t(9), None, &mut candidate);
        s.learn(&tcp("S", 2000, 0), t(12), None, &mut candidate);
        s.learn(&tcp("S", 1000, 0), t(11), None, &mut candidate);
        s.settle(candidate);
        // After DNAT the SYN has other addresses and ports but the same sequence number.
        let mut natted = tcp("S", 1000, 0);
        natted.l4 = L4::Tcp { sport: 40000, dport: 12345, flags: "S".into(), seq: Some(1000), ack: Some(0) };
        assert_eq!(s.classify(&natted, &[]), Some(Direction::Request));
        assert_eq!(s.classify(&tcp("S.", 777, 1001), &[]), Some(Direction::Reply));
        assert_eq!(s.classify(&tcp("S.", 777, 2001), &[]), None);
        assert_eq!(s.classify(&tcp(".", 1001, 778), &[]), None, "the handshake's ACK is neither");

        // The segment carrying the nonce names the connection even when ports say otherwise.
        let mut s2 = Sent { nonce: b"netpath-00000000000000aa".to_vec(), ..s.clone() };
        if let Ident::Connection { isn, .. } = &mut s2.ident {
            *isn = None;
        }
        let mut candidate = None;
        s2.learn(&tcp("P.", 4001, 9), t(20), find_nonce(b"..netpath-00000000000000aa..").as_deref(), &mut candidate);
        s2.learn(&tcp("S", 1000, 0), t(11), None, &mut candidate);
        s2.settle(candidate);
        assert_eq!(s2.classify(&tcp("S", 4000, 0), &[]), Some(Direction::Request));
    }
}
