//! Waits for a neighbour entry, read from the captures: the ARP requests (IPv6: neighbour
//! solicitations) an interface sent for an address and the answer that ended them. A packet
//! whose next hop has no neighbour entry waits in the kernel until one is resolved (a proxy ARP
//! reply the kernel delays by up to `proxy_delay`, a first request lost), so that wait is part
//! of how late its answer came: a late answer names it ("820 ms of it was ARP for 169.254.1.1").

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::Frame;
use crate::scenario::CapturePoint;

/// One resolution of an address seen at a capture point: from its first request to the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub at: CapturePoint,
    pub target: IpAddr,
    /// The first request's capture time (wall clock, as every frame's).
    pub asked: Duration,
    /// The answer's capture time.
    pub answered: Duration,
    /// How many requests were sent before the answer.
    pub requests: usize,
}

impl Resolution {
    pub fn waited(&self) -> Duration {
        self.answered.saturating_sub(self.asked)
    }
}

impl fmt::Display for Resolution {
    /// `820 ms of it was ARP for 169.254.1.1 at cl/eth0 (2 requests, the first to the answer)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.target.is_ipv4() { "ARP" } else { "neighbour discovery" };
        let requests = match self.requests {
            1 => "its request to the answer".to_string(),
            n => format!("{n} requests, the first to the answer"),
        };
        write!(f, "{} of it was {what} for {} at {} ({requests})", whole_ms(self.waited()), self.target, self.at)
    }
}

/// `820 ms`, `1,232 ms`: whole milliseconds, thousands separated, as a person reads a delay.
pub fn whole_ms(d: Duration) -> String {
    let ms = d.as_millis().to_string();
    let mut out = String::new();
    for (i, c) in ms.chars().enumerate() {
        if i > 0 && (ms.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out} ms")
}

/// What a frame says of neighbour resolution: a request for an address, or an answer for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Neighbour {
    Asks(IpAddr),
    Answers(IpAddr),
}

const ETH_HEADER: usize = 14;

/// Read an Ethernet frame as an ARP request or reply, or an ICMPv6 neighbour solicitation or
/// advertisement (without extension headers, as the kernel sends them).
fn neighbour(data: &[u8]) -> Option<Neighbour> {
    let ethertype = u16::from_be_bytes(data.get(12..14)?.try_into().ok()?);
    let body = data.get(ETH_HEADER..)?;
    match ethertype {
        0x0806 => {
            // ARP over Ethernet/IPv4: op at 6, sender IP at 14, target IP at 24.
            let op = u16::from_be_bytes(body.get(6..8)?.try_into().ok()?);
            let ip = |at: usize| -> Option<IpAddr> {
                let b: [u8; 4] = body.get(at..at + 4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(b)))
            };
            match op {
                1 => Some(Neighbour::Asks(ip(24)?)),
                2 => Some(Neighbour::Answers(ip(14)?)),
                _ => None,
            }
        }
        0x86dd => {
            // IPv6 header (40 bytes, next header at 6), ICMPv6 type at 40, target at 48.
            if *body.get(6)? != 58 {
                return None;
            }
            let target: [u8; 16] = body.get(48..64)?.try_into().ok()?;
            let target = IpAddr::V6(Ipv6Addr::from(target));
            match *body.get(40)? {
                135 => Some(Neighbour::Asks(target)),
                136 => Some(Neighbour::Answers(target)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Every resolution the Ethernet captures saw, per capture point and address: a run of
/// requests ended by an answer. Requests no answer ended are not resolutions (a failed entry
/// drops its packets, which is another story: [`crate::evidence::drop`]).
pub fn resolutions(frames: &[Frame]) -> Vec<Resolution> {
    let mut by_time: Vec<&Frame> = frames.iter().filter(|f| f.linktype == pcap::Linktype::ETHERNET).collect();
    by_time.sort_by_key(|f| f.ts);
    let mut pending: BTreeMap<(&CapturePoint, IpAddr), (Duration, usize)> = BTreeMap::new();
    let mut out = vec![];
    for f in by_time {
        match neighbour(&f.data) {
            Some(Neighbour::Asks(ip)) => pending.entry((&f.point, ip)).or_insert((f.ts, 0)).1 += 1,
            Some(Neighbour::Answers(ip)) => {
                if let Some((asked, requests)) = pending.remove(&(&f.point, ip)) {
                    out.push(Resolution { at: f.point.clone(), target: ip, asked, answered: f.ts, requests });
                }
            }
            None => {}
        }
    }
    out
}

/// How close a frame's time and a packet's send (or first sighting) may be and still be in
/// order: the socket's clock is read just before `sendto` and capture timestamps are in
/// microseconds.
const SLACK: Duration = Duration::from_millis(1);

/// The longest resolution that held up a packet sent at `sent`: one asked for after the send,
/// at a capture point the packet (`first_seen`: its first sighting at each point) then left
/// through, answered before it did.
pub fn holding_up<'a>(
    resolutions: &'a [Resolution],
    sent: Duration,
    first_seen: &BTreeMap<CapturePoint, Duration>,
) -> Option<&'a Resolution> {
    resolutions
        .iter()
        .filter(|r| {
            r.asked + SLACK >= sent
                && first_seen.get(&r.at).is_some_and(|&left| r.answered <= left + SLACK && r.asked <= left)
        })
        .max_by_key(|r| r.waited())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arp(op: u16, sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend([2, 0, 0, 0, 0, 1]);
        f.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
        f.extend(op.to_be_bytes());
        f.extend([2, 0, 0, 0, 0, 1]);
        f.extend(sender);
        f.extend([0; 6]);
        f.extend(target);
        f
    }

    fn frame(at: &str, ms: u64, data: Vec<u8>) -> Frame {
        Frame { point: at.parse().unwrap(), linktype: pcap::Linktype::ETHERNET, ts: Duration::from_millis(ms), data }
    }

    #[test]
    fn a_resolution_runs_from_the_first_request_to_the_answer_at_one_point() {
        let (cl, gw) = ([10, 0, 0, 1], [169, 254, 1, 1]);
        let frames = vec![
            frame("cl/eth0", 1000, arp(1, cl, gw)),
            // Another interface's request for the same address is its own.
            frame("r/eth1", 1100, arp(1, [10, 1, 0, 1], gw)),
            frame("cl/eth0", 1400, arp(1, cl, gw)),
            frame("cl/eth0", 1820, arp(2, gw, cl)),
        ];
        let rs = resolutions(&frames);
        assert_eq!(rs.len(), 1, "the request no answer ended is none: {rs:?}");
        assert_eq!(rs[0].waited(), Duration::from_millis(820));
        assert_eq!(
            rs[0].to_string(),
            "820 ms of it was ARP for 169.254.1.1 at cl/eth0 (2 requests, the first to the answer)"
        );
        let left = |ms| BTreeMap::from([("cl/eth0".parse().unwrap(), Duration::from_millis(ms))]);
        assert_eq!(holding_up(&rs, Duration::from_millis(1000), &left(1821)), Some(&rs[0]));
        // Twins: the packet left before the answer came, or was sent after the request: not it.
        assert_eq!(holding_up(&rs, Duration::from_millis(1000), &left(1300)), None);
        assert_eq!(holding_up(&rs, Duration::from_millis(1200), &left(1821)), None);
        // A frame that is no ARP is not read as one.
        assert_eq!(neighbour(&[0u8; 60]), None);
        assert_eq!(whole_ms(Duration::from_micros(1_232_900)), "1,232 ms");
        assert_eq!(whole_ms(Duration::from_millis(232)), "232 ms");
    }
}
