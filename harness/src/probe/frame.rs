//! Crafted frames: an Ethernet/IPv4/TCP or Ethernet/IPv6/TCP segment built field by field
//! (spoofed sources, TTL or hop limit, a lone ACK...) and injected on an interface with an
//! AF_PACKET socket, still carrying a nonce.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use etherparse::PacketBuilder;

use super::wait::{self, Read};
use super::{Context, Matcher, Prober, Sent, new_nonce};
use crate::error::{Error, Result};
use crate::evidence::packet::{L4, Mac, PacketInfo, contains};
use crate::lab::netns::Netns;
use crate::observe::drops::Drops;
use crate::scenario::{ConntrackProto, Direction, ProbeKind, ProbeSpec, Scenario};

/// `kind = "frame"`: a `[probe.frame]` table says how the segment is built.
pub struct Frame;

impl Prober for Frame {
    fn kind(&self) -> ProbeKind {
        ProbeKind::Frame
    }

    fn conntrack_proto(&self, _v6: bool) -> ConntrackProto {
        ConntrackProto::Tcp
    }

    fn needs_port(&self) -> bool {
        true
    }

    fn problems(&self, sc: &Scenario, p: &ProbeSpec) -> Vec<(String, String)> {
        let Some(f) = &p.frame else {
            return vec![(
                String::new(),
                "kind = \"frame\" needs a [probe.frame] table (iface, and optionally mac_src, mac_dst, src, sport, ttl, flags)".into(),
            )];
        };
        let mut out = vec![];
        let names = sc.interface_names(&p.from);
        if !names.contains(&f.iface.as_str()) {
            let have = if names.is_empty() {
                format!("netns {} has no interface", p.from)
            } else {
                format!("its interfaces: {}", names.join(", "))
            };
            out.push(("frame.iface".into(), format!("netns {} has no interface `{}` ({have})", p.from, f.iface)));
        } else if let Some(w) = sc.wireguard_at(&p.from, &f.iface) {
            out.push((
                "frame.iface".into(),
                format!("{} is a WireGuard interface: a frame probe injects an Ethernet frame, which it has no link layer for", w.id()),
            ));
        }
        if let Some(bad) = f.flags.chars().find(|c| !"SAFRP".contains(*c)) {
            out.push(("frame.flags".into(), format!("`{bad}` is not a TCP flag letter (want S, A, F, R, P)")));
        }
        out
    }

    fn send(&self, cx: &Context<'_>) -> Result<Vec<Sent>> {
        let seg = segment(cx)?;
        (1..=cx.spec.count).map(|n| inject(cx.ns, &seg, cx.packet(n.into())?, cx.drops)).collect()
    }
}

/// The crafted segment of a frame probe, with the defaults filled in from the lab: the
/// interface's MAC and first address of the target's family, and the MAC of whichever lab
/// interface owns the next hop.
fn segment(cx: &Context<'_>) -> Result<Segment> {
    let (p, sc, lab, dst) = (cx.spec, cx.scenario, cx.lab, cx.dst);
    let f = p.frame.as_ref().ok_or_else(|| cx.fail("kind = \"frame\" needs a [probe.frame] table"))?;
    let family = if dst.is_ipv4() { "IPv4" } else { "IPv6" };
    let own = sc.interface_addresses(&p.from, &f.iface);
    let src = f
        .src
        .or_else(|| own.iter().map(|c| c.addr).find(|a| a.is_ipv4() == dst.is_ipv4()))
        .filter(|a| a.is_ipv4() == dst.is_ipv4())
        .ok_or_else(|| cx.fail(format!("{}/{} has no {family} address: give [probe.frame] src", p.from, f.iface)))?;
    let mac_src = match f.mac_src {
        Some(m) => m,
        None => lab.link_mac(&p.from, &f.iface)?,
    };
    let mac_dst = match f.mac_dst {
        Some(m) => m,
        None => {
            let hop = sc.next_hop(&p.from, &f.iface, dst);
            let (netns, iface) = sc.owner_of(hop).ok_or_else(|| {
                cx.fail(format!("no lab interface owns the next hop {hop} towards {dst}: give [probe.frame] mac_dst"))
            })?;
            lab.link_mac(&netns, &iface)?
        }
    };
    let sport = f.sport.unwrap_or(32768 + (crate::random::u64() % 28000) as u16);
    Ok(Segment {
        iface: f.iface.clone(),
        mac_src,
        mac_dst,
        src,
        dst,
        ttl: f.ttl,
        sport,
        dport: cx.port()?,
        flags: f.flags.clone(),
    })
}

/// Every field of the segment.
#[derive(Debug, Clone)]
pub struct Segment {
    pub iface: String,
    pub mac_src: Mac,
    pub mac_dst: Mac,
    /// Of the family of `dst`.
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL or hop limit.
    pub ttl: u8,
    pub sport: u16,
    pub dport: u16,
    /// Letters: S syn, A ack, F fin, R rst, P push.
    pub flags: String,
}

/// Build the frame: the nonce is its payload, the sequence number random.
pub fn build(seg: &Segment, seq: u32, nonce: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let eth = PacketBuilder::ethernet2(seg.mac_src.0, seg.mac_dst.0);
    let ip = match (seg.src, seg.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), seg.ttl),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), seg.ttl),
        (s, d) => return Err(format!("source {s} and destination {d} are of different families")),
    };
    let mut b = ip.tcp(seg.sport, seg.dport, seq, 64240);
    for f in seg.flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(0),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            other => return Err(format!("unknown TCP flag `{other}` (want letters of S, A, F, R, P)")),
        };
    }
    let mut frame = Vec::with_capacity(b.size(nonce.len()));
    b.write(&mut frame, nonce).map_err(|e| e.to_string())?;
    Ok(frame)
}

/// Inject `seg` from inside `ns` and wait up to `timeout` for a segment acknowledging it to come
/// back on the same interface (not once the trace shows it dropped). Mirrors a scapy `sendp()`
/// on that interface.
pub fn inject(ns: &Netns, seg: &Segment, timeout: Duration, drops: &Drops) -> Result<Sent> {
    let fail = |m: String| Error::Probe {
        probe: format!("frame {}/{} -> {}", ns.name(), seg.iface, std::net::SocketAddr::new(seg.dst, seg.dport)),
        message: m,
    };
    ns.run(|| {
        let nonce = new_nonce();
        let seq = (crate::random::u64() & 0xffff_ffff) as u32;
        let frame = build(seg, seq, &nonce).map_err(fail)?;
        let ifindex = nix::net::if_::if_nametoindex(seg.iface.as_str())
            .map_err(|e| fail(format!("no interface {}: {e}", seg.iface)))?;
        let sock = packet_socket(ifindex)
            .map_err(|e| fail(format!("AF_PACKET socket: {e} (needs CAP_NET_RAW: run as root)")))?;
        send(&sock, ifindex, &seg.mac_dst, seg.dst, &frame).map_err(|e| fail(format!("send: {e}")))?;
        let len = nonce.len() as u32;
        let sent_at = std::time::Instant::now();
        let replied =
            wait_ack(&sock, seq, len, timeout, &|| drops.nonce(&nonce)).map_err(|e| fail(format!("read: {e}")))?;
        // Whatever acknowledges a crafted segment is its reply, a RST too: a frame probe asks
        // whether the segment got through, not how it was answered.
        let heard = if replied { super::Heard::reply(sent_at.elapsed()) } else { super::Heard::nothing() };
        Ok(Sent { nonce, matcher: Box::new(Crafted { seq, len }), heard, answer: None })
    })
}

/// A crafted segment with sequence number `seq` and the nonce as payload (`len` bytes); the
/// reply is whatever acknowledges it (SYN-ACK, or RST).
#[derive(Debug, Clone)]
pub struct Crafted {
    pub seq: u32,
    pub len: u32,
}

impl Matcher for Crafted {
    fn classify(&self, nonce: &[u8], info: &PacketInfo, bytes: &[u8]) -> Option<Direction> {
        let L4::Tcp { seq, ack, .. } = &info.l4 else { return None };
        let acked = |a: u32| a == self.seq.wrapping_add(1) || a == self.seq.wrapping_add(1).wrapping_add(self.len);
        if *seq == Some(self.seq) && (bytes.is_empty() || contains(bytes, nonce)) {
            Some(Direction::Request)
        } else if ack.is_some_and(acked) {
            Some(Direction::Reply)
        } else {
            None
        }
    }

    fn without_nonce(&self) -> bool {
        true
    }

    fn clone_box(&self) -> Box<dyn Matcher> {
        Box::new(self.clone())
    }
}

fn packet_socket(ifindex: u32) -> std::io::Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
    // SAFETY: socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and valid.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = sockaddr_ll(ifindex, &Mac([0; 6]), proto as u16);
    // SAFETY: bind with a sockaddr_ll of the right size; receiving only this interface's frames.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}

fn sockaddr_ll(ifindex: u32, mac: &Mac, proto: u16) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid start.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex = ifindex as i32;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&mac.0);
    addr
}

fn send(sock: &OwnedFd, ifindex: u32, dst: &Mac, ip: IpAddr, frame: &[u8]) -> std::io::Result<()> {
    let ethertype = if ip.is_ipv4() { libc::ETH_P_IP } else { libc::ETH_P_IPV6 };
    let addr = sockaddr_ll(ifindex, dst, (ethertype as u16).to_be());
    // SAFETY: sendto with a valid buffer and a sockaddr_ll of the right size.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

fn wait_ack(
    sock: &OwnedFd,
    seq: u32,
    len: u32,
    timeout: Duration,
    dropped: &dyn Fn() -> Option<Duration>,
) -> std::io::Result<bool> {
    let mut buf = vec![0u8; 65536];
    let acked = wait::answer(sock.as_fd(), timeout, dropped, || {
        loop {
            // SAFETY: recv into an owned buffer of the given length.
            let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    return Ok(Read::Again);
                }
                return Err(e);
            }
            if let Some(PacketInfo { l4: L4::Tcp { ack: Some(a), .. }, .. }) =
                PacketInfo::from_ethernet(&buf[..n as usize])
                && (a == seq.wrapping_add(1) || a == seq.wrapping_add(1).wrapping_add(len))
            {
                return Ok(Read::Done(Some(())));
            }
        }
    })?;
    Ok(acked.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_segment_it_is_told() {
        let seg = Segment {
            iface: "eth0".into(),
            mac_src: "02:00:00:00:00:01".parse().unwrap(),
            mac_dst: "02:00:00:00:00:02".parse().unwrap(),
            src: "10.171.77.30".parse().unwrap(),
            dst: "10.171.77.2".parse().unwrap(),
            ttl: 17,
            sport: 40000,
            dport: 8080,
            flags: "S".into(),
        };
        let frame = build(&seg, 1234, b"netpath-0011223344556677").unwrap();
        let info = PacketInfo::from_ethernet(&frame).unwrap();
        assert_eq!(info.ttl, Some(17));
        assert_eq!(info.mac_dst, Some(seg.mac_dst));
        assert_eq!(info.l4, L4::Tcp { sport: 40000, dport: 8080, flags: "S".into(), seq: Some(1234), ack: Some(0) });
        assert!(crate::evidence::packet::contains(&frame, b"netpath-0011223344556677"));
        let lone_ack = build(&Segment { flags: "A".into(), ..seg.clone() }, 1, b"").unwrap();
        assert!(matches!(PacketInfo::from_ethernet(&lone_ack).unwrap().l4, L4::Tcp { ref flags, .. } if flags == "."));
        assert!(build(&Segment { flags: "X".into(), ..seg }, 1, b"").is_err());
    }
}
