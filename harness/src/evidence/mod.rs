//! Evidence of each probe: for each packet of the flow, request and reply, the hooks it met
//! (per netns, in order) and what it carried at each capture point. Joined by payload nonce,
//! and where an event carries no payload, by its headers ([`key`], [`attribute`]).

pub mod attribute;
pub mod conntrack;
pub mod drop;
pub mod neighbour;
pub mod packet;
pub mod response;

pub use response::Response;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::evidence::attribute::{Ambiguous, Clues, Seen, Sightings, Who};
use crate::evidence::packet::PacketInfo;
use crate::evidence::response::Caught;
use crate::observe::trace::TraceEvent;
use crate::probe::{Sent, find_nonce};
use crate::scenario::{Answer, CapturePoint, Direction};

pub mod key;

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

/// A trace event with the time the collector got it, and what its source knows beyond its
/// headers to tell its packet from another with the same key.
#[derive(Debug, Clone)]
pub struct TimedEvent {
    pub ts: Duration,
    pub event: TraceEvent,
    pub clues: Clues,
}

impl TimedEvent {
    /// An event its source knows nothing more of (its payload, where it has one, says it all).
    pub fn new(ts: Duration, event: TraceEvent) -> TimedEvent {
        TimedEvent { ts, event, clues: Clues::default() }
    }
}

/// Where one packet was seen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PacketEvidence {
    /// Hooks in the order the packet met them, per netns.
    pub path: BTreeMap<String, Vec<TraceEvent>>,
    /// What it carried at each capture point, the first time it was seen there.
    pub seen: BTreeMap<CapturePoint, PacketInfo>,
    /// What it carried each later time it was seen at a capture point, in order (sighting 2,
    /// 3...): a hairpinned packet leaves a veth and comes back through it NATed, a looping
    /// packet passes again. A TCP SYN sent again (a retransmission) is a later sighting too.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub again: BTreeMap<CapturePoint, Vec<PacketInfo>>,
    /// When it was first seen at each capture point (the capture's timestamp: one clock for
    /// every interface), so reports can put its capture points in the order it met them.
    #[serde(skip)]
    pub first_seen: BTreeMap<CapturePoint, Duration>,
    /// When each later sighting in [`PacketEvidence::again`] was captured, in the same order:
    /// a hairpinned packet's second pass takes its place in the hop list by it.
    #[serde(skip)]
    pub again_seen: BTreeMap<CapturePoint, Vec<Duration>>,
    /// Where and why the kernel dropped it, in the order it did ([`drop`]): one, unless a
    /// clone of it died too, or (TCP) a retransmission of it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drops: Vec<crate::observe::kfree_skb::KernelDrop>,
}

impl PacketEvidence {
    /// What it carried the `n`th time (1-based) it was seen at `at`.
    pub fn sighting(&self, at: &CapturePoint, n: u16) -> Option<&PacketInfo> {
        match n {
            0 => None,
            1 => self.seen.get(at),
            n => self.again.get(at)?.get(usize::from(n) - 2),
        }
    }

    /// The capture points that saw it, in the order it met them (by their capture's timestamps;
    /// those without one last, by name).
    pub fn seen_in_order(&self) -> Vec<&CapturePoint> {
        let mut points: Vec<&CapturePoint> = self.seen.keys().collect();
        points.sort_by_key(|p| self.first_seen.get(*p).copied().unwrap_or(Duration::MAX));
        points
    }

    /// Every sighting at `at`, in order.
    pub fn sightings<'a>(&'a self, at: &CapturePoint) -> impl Iterator<Item = &'a PacketInfo> + use<'a> {
        self.seen.get(at).into_iter().chain(self.again.get(at).into_iter().flatten())
    }
}

/// One packet of the flow and its reply.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// 1-based position in the flow.
    pub packet: u16,
    #[serde(serialize_with = "hex")]
    pub nonce: Vec<u8>,
    /// The request as first sent: what `exact`, `last` and every other expectation judge.
    pub request: PacketEvidence,
    pub reply: PacketEvidence,
    /// Each time the request was sent again (a TCP SYN's retransmission, same sequence number):
    /// its own traversal, never merged into the first one's path. Reports show it as
    /// "retransmission 1", ...; no expectation judges it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retransmissions: Vec<PacketEvidence>,
    /// Each time the reply was sent again (a SYN-ACK the server retransmits when the client's
    /// ACK is late, as under QEMU's TCG): its own traversal, as for the request's; no
    /// expectation judges it, and how often it happens is the kernel's timing, not the datapath.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reply_retransmissions: Vec<PacketEvidence>,
    /// Whether the sender got the reply (`response.kind` is a reply).
    pub replied: bool,
    /// What answered it: a reply, a refusal, a local drop or nothing, from whom, seen where,
    /// how soon.
    pub response: Response,
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

/// Every probe's evidence, and the events no single probe packet fits.
#[derive(Debug)]
pub struct Joined {
    /// Per probe, in the order given, its exchanges.
    pub probes: Vec<Vec<Exchange>>,
    /// The traversals whose events more than one probe packet fits, per netns in order.
    pub unattributed: Vec<Unattributed>,
}

/// One traversal of a netns's chains that the captures cannot attribute to a single packet.
#[derive(Debug, Clone)]
pub struct Unattributed {
    pub netns: String,
    /// Its first event.
    pub first: TraceEvent,
    pub ambiguous: Ambiguous,
}

impl Joined {
    /// What cannot be attributed, a line per netns: how many events, and the first traversals
    /// with the packets they could be (`names`: the probes' names, in the order given to [`join`]).
    pub fn unattributed(&self, names: &[&str]) -> Vec<String> {
        const SHOWN: usize = 3;
        let mut by_netns: BTreeMap<&str, Vec<&Unattributed>> = BTreeMap::new();
        for u in &self.unattributed {
            by_netns.entry(&u.netns).or_default().push(u);
        }
        let who = |(probe, packet, d): Who| {
            format!("packet {} {d} of probe {}", packet + 1, names.get(probe).copied().unwrap_or("?"))
        };
        by_netns
            .into_iter()
            .map(|(netns, us)| {
                let events: usize = us.iter().map(|u| u.ambiguous.events).sum();
                let shown: Vec<String> = us
                    .iter()
                    .take(SHOWN)
                    .map(|u| {
                        let id = u.first.packet.ip_id.map(|id| format!(", IPv4 id {id}")).unwrap_or_default();
                        let could: Vec<String> = u.ambiguous.candidates.iter().map(|&c| who(c)).collect();
                        format!("{} of {}{id} could be {}", u.first.hook, u.first.packet, could.join(" or "))
                    })
                    .collect();
                let more = us.len().saturating_sub(SHOWN);
                format!(
                    "netns {netns}: {events} trace events of {} packet traversals fit more than one probe packet ({}{})",
                    us.len(),
                    shown.join("; "),
                    if more > 0 { format!("; and {more} more") } else { String::new() }
                )
            })
            .collect()
    }
}

/// How long a pause between two sightings of a request makes the second a new transmission:
/// TCP's minimum retransmission timeout (`TCP_RTO_MIN`, 200 ms; a SYN's first is 1 s), while
/// one transmission crosses a lab in well under a millisecond per hop.
pub const RETRANSMISSION_GAP: Duration = Duration::from_millis(200);

/// Where each transmission starts among times `ts` (sorted): the first, and every one that
/// follows a pause of [`RETRANSMISSION_GAP`].
fn transmission_starts(ts: &[Duration]) -> Vec<Duration> {
    let mut starts = vec![];
    let mut last: Option<Duration> = None;
    for &t in ts {
        if last.is_none_or(|l| t.saturating_sub(l) >= RETRANSMISSION_GAP) {
            starts.push(t);
        }
        last = Some(t);
    }
    starts
}

/// Which transmission (0: the first) a sighting at `t` belongs to.
fn transmission_of(starts: &[Duration], t: Duration) -> usize {
    starts.iter().filter(|&&s| s <= t).count().saturating_sub(1)
}

impl Exchange {
    /// The evidence of transmission `k` of the request or the reply (0: the first, then its
    /// retransmissions).
    fn transmission_mut(&mut self, d: Direction, k: usize) -> &mut PacketEvidence {
        if k == 0 {
            return self.of_mut(d);
        }
        let again = match d {
            Direction::Request => &mut self.retransmissions,
            Direction::Reply => &mut self.reply_retransmissions,
        };
        if again.len() < k {
            again.resize_with(k, PacketEvidence::default);
        }
        &mut again[k - 1]
    }
}

/// One direction of one probe packet: `(probe, packet, direction)`.
type Segment = (usize, usize, Direction);

/// The first capture of a probe packet's request (when), of its reply and of a refusal of it.
type Firsts = (Option<Duration>, Option<Caught>, Option<Caught>);

/// Gather the evidence of each packet the probes sent from everything observed: frames and
/// trace events that carry the packet's nonce or its TCP sequence numbers are classified
/// directly; trace events that carry headers only (nf_tables, kernel log) are matched by the
/// header fields NAT leaves alone, learnt from the frames, and where two probe packets have
/// those, told apart by the rest of what the event shows ([`attribute`]). All probes at once:
/// a key one probe's packets share with another's must be seen as shared.
pub fn join(probes: &mut [Vec<Sent>], frames: &Parsed<'_>, events: &BTreeMap<String, Vec<TimedEvent>>) -> Joined {
    for sent in probes.iter_mut() {
        let learners: Vec<usize> = (0..sent.len()).filter(|&i| sent[i].matcher.learns()).collect();
        if learners.is_empty() {
            continue;
        }
        for (f, info, nonce) in frames.iter() {
            for &i in &learners {
                sent[i].learn(info, &f.data, f.ts, nonce);
            }
        }
        for &i in &learners {
            sent[i].matcher.settle();
        }
    }
    let packets: Vec<(usize, usize, &Sent)> =
        probes.iter().enumerate().flat_map(|(p, sent)| sent.iter().enumerate().map(move |(i, s)| (p, i, s))).collect();
    let by_nonce: BTreeMap<&[u8], usize> =
        packets.iter().enumerate().map(|(k, (_, _, s))| (s.nonce.as_slice(), k)).collect();
    let unnonced: Vec<usize> = (0..packets.len()).filter(|&k| packets[k].2.matcher.without_nonce()).collect();
    let classify = |info: &PacketInfo, bytes: &[u8], nonce: Option<&[u8]>| -> Option<Who> {
        let of = |k: usize| {
            let (p, i, s) = packets[k];
            s.classify(info, bytes).map(|d| (p, i, d))
        };
        match nonce.and_then(|n| by_nonce.get(n).copied()) {
            Some(k) => of(k),
            None => unnonced.iter().find_map(|&k| of(k)),
        }
    };

    let mut out: Vec<Vec<Exchange>> = probes
        .iter()
        .map(|sent| {
            sent.iter()
                .enumerate()
                .map(|(i, s)| Exchange {
                    packet: i as u16 + 1,
                    nonce: s.nonce.clone(),
                    request: PacketEvidence::default(),
                    reply: PacketEvidence::default(),
                    retransmissions: vec![],
                    reply_retransmissions: vec![],
                    replied: s.replied(),
                    response: Response::heard(&s.heard),
                    answer: s.answer.clone(),
                })
                .collect()
        })
        .collect();
    // Who refused a packet: an ICMP error quotes the nonce; a RST is known by its numbers.
    let refusal = |info: &PacketInfo, bytes: &[u8], nonce: Option<&[u8]>| -> Option<(usize, usize, String)> {
        let of = |k: usize| {
            let (p, i, s) = packets[k];
            s.refusal(info, bytes).map(|how| (p, i, how))
        };
        match nonce.and_then(|n| by_nonce.get(n).copied()) {
            Some(k) => of(k),
            None => unnonced.iter().find_map(|&k| of(k)),
        }
    };
    // Per packet, the first capture of its request, its reply and a refusal of it.
    let mut first: BTreeMap<(usize, usize), Firsts> = BTreeMap::new();
    let caught = |f: &Frame, info: &PacketInfo, how: Option<String>| Caught {
        ts: f.ts,
        at: f.point.clone(),
        from: info.src,
        how,
    };
    // A segment its sender sends again (a TCP SYN, or the SYN-ACK answering it) is told from
    // its first transmission by time: each transmission passes the capture point nearest the
    // sender again, after a pause, on the kernel's capture clock. Only that point counts: a hop
    // further on may see one transmission late (a stalled vCPU under TCG), and a hairpin brings
    // it back within a millisecond.
    let mut sender_ts: BTreeMap<Segment, Vec<(Duration, &CapturePoint)>> = BTreeMap::new();
    for (f, info, nonce) in frames.iter() {
        if let Some((p, i, d)) = classify(info, &f.data, nonce)
            && probes[p][i].matcher.retransmits()
        {
            sender_ts.entry((p, i, d)).or_default().push((f.ts, &f.point));
        }
    }
    let sender_ts = sender_ts.into_iter().map(|(k, mut seen)| {
        seen.sort_by_key(|(t, _)| *t);
        let nearest = seen[0].1;
        (k, seen.iter().filter(|(_, at)| *at == nearest).map(|(t, _)| *t).collect::<Vec<_>>())
    });
    let frame_starts: BTreeMap<(usize, usize, Direction), Vec<Duration>> = sender_ts
        .into_iter()
        .map(|(k, mut ts)| {
            ts.sort();
            (k, transmission_starts(&ts))
        })
        .collect();
    let mut sightings = Sightings::default();
    for (f, info, nonce) in frames.iter() {
        let Some(who @ (p, i, d)) = classify(info, &f.data, nonce) else {
            if let Some((p, i, how)) = refusal(info, &f.data, nonce) {
                let slot = &mut first.entry((p, i)).or_default().2;
                if slot.as_ref().is_none_or(|c| f.ts < c.ts) {
                    *slot = Some(caught(f, info, Some(how)));
                }
            }
            continue;
        };
        sightings.add(who, info, &f.data, f.ts);
        let firsts = first.entry((p, i)).or_default();
        match d {
            Direction::Request => firsts.0 = Some(firsts.0.map_or(f.ts, |t| t.min(f.ts))),
            Direction::Reply if firsts.1.as_ref().is_none_or(|c| f.ts < c.ts) => {
                firsts.1 = Some(caught(f, info, None));
            }
            Direction::Reply => {}
        }
        let k = frame_starts.get(&(p, i, d)).map_or(0, |st| transmission_of(st, f.ts));
        let pe = out[p][i].transmission_mut(d, k);
        match pe.seen.entry(f.point.clone()) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(info.clone());
                pe.first_seen.insert(f.point.clone(), f.ts);
            }
            std::collections::btree_map::Entry::Occupied(_) => {
                pe.again.entry(f.point.clone()).or_default().push(info.clone());
                pe.again_seen.entry(f.point.clone()).or_default().push(f.ts);
            }
        }
    }
    for ((p, i), (request, reply, refused)) in &first {
        let heard = &probes[*p][*i].heard;
        let caught = match heard.kind {
            Answer::Reply => reply.as_ref(),
            _ => refused.as_ref(),
        };
        out[*p][*i].response = Response::of(heard, *request, caught);
    }
    // A late answer's packet may have waited for its next hop's neighbour entry before it left.
    let late: Vec<(usize, usize, Duration)> = probes
        .iter()
        .enumerate()
        .flat_map(|(p, sent)| sent.iter().enumerate().filter_map(move |(i, s)| Some((p, i, s.heard.late?.sent))))
        .collect();
    if !late.is_empty() {
        let resolutions = neighbour::resolutions(frames.frames);
        for (p, i, sent) in late {
            let x = &out[p][i];
            let held_up = neighbour::holding_up(&resolutions, sent, &x.request.first_seen)
                .or_else(|| neighbour::holding_up(&resolutions, sent, &x.reply.first_seen))
                .cloned();
            out[p][i].response.held_up = held_up;
        }
    }
    let mut unattributed = vec![];
    for (netns, evs) in events {
        let mut owner: Vec<Option<Who>> = vec![None; evs.len()];
        // Events with a payload, or a TCP segment's sequence numbers, name their packet; the
        // others go by their headers, a traversal at a time.
        let mut by_headers = vec![];
        for (k, te) in evs.iter().enumerate() {
            let ev = &te.event;
            owner[k] = match &ev.payload {
                Some(bytes) => classify(&ev.packet, bytes, find_nonce(bytes).as_deref()),
                None => {
                    let direct = classify(&ev.packet, &[], None);
                    if direct.is_none() {
                        by_headers.push(k);
                    }
                    direct
                }
            };
        }
        let seen: Vec<Seen> =
            by_headers.iter().map(|&k| Seen { packet: &evs[k].event.packet, clues: &evs[k].clues }).collect();
        for range in attribute::traversals(&seen) {
            match sightings.attribute(&seen[range.clone()]) {
                Ok(who) => range.for_each(|j| owner[by_headers[j]] = who),
                Err(ambiguous) => unattributed.push(Unattributed {
                    netns: netns.clone(),
                    first: evs[by_headers[range.start]].event.clone(),
                    ambiguous,
                }),
            }
        }
        // A retransmitted segment's events pause like its frames, on the trace source's own
        // clock. An nf_tables event's time is when it was read: a traversal (one trace id) read
        // in two batches is still one, so only the first event of each trace id starts anything.
        let mut event_ts: BTreeMap<(usize, usize, Direction), Vec<Duration>> = BTreeMap::new();
        let mut ids: std::collections::BTreeSet<(usize, usize, Direction, u32)> = Default::default();
        for (te, who) in evs.iter().zip(&owner) {
            if let Some((p, i, d)) = *who
                && probes[p][i].matcher.retransmits()
                && te.clues.trace_id.is_none_or(|id| ids.insert((p, i, d, id)))
            {
                event_ts.entry((p, i, d)).or_default().push(te.ts);
            }
        }
        let mut of_id: BTreeMap<(usize, usize, Direction, u32), usize> = BTreeMap::new();
        let starts: BTreeMap<(usize, usize, Direction), Vec<Duration>> = event_ts
            .into_iter()
            .map(|(k, mut ts)| {
                ts.sort();
                (k, transmission_starts(&ts))
            })
            .collect();
        for (te, who) in evs.iter().zip(owner) {
            if let Some((p, i, d)) = who {
                // The frames, on the kernel's capture clock, say how often the segment was sent;
                // a trace source's clock may pause inside one traversal (a record stamped when
                // read, a TCG guest's stalled vCPU), and a pause must not invent a transmission.
                // (A segment no frame saw, dropped before the first capture point, has only
                // the trace's clock.)
                let sent = frame_starts.get(&(p, i, d)).map_or(usize::MAX, Vec::len);
                let k = match starts.get(&(p, i, d)) {
                    Some(st) => match te.clues.trace_id {
                        Some(id) => *of_id.entry((p, i, d, id)).or_insert_with(|| transmission_of(st, te.ts)),
                        None => transmission_of(st, te.ts),
                    },
                    None => 0,
                }
                .min(sent.saturating_sub(1));
                let pe = out[p][i].transmission_mut(d, k);
                pe.path.entry(netns.clone()).or_default().push(te.event.clone());
            }
        }
    }
    Joined { probes: out, unattributed }
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
        let sent = [Sent {
            nonce: nonce.clone(),
            matcher: Box::new(crate::probe::icmp::Echo),
            heard: crate::probe::Heard::reply(Duration::ZERO),
            answer: None,
        }];
        let frames = [frame];
        let mut probes = [sent.to_vec()];
        let joined = join(&mut probes, &Parsed::new(&frames), &BTreeMap::new());
        let seen = &joined.probes[0][0].request.seen[&"peer2/wg0".parse::<CapturePoint>().unwrap()];
        assert_eq!(seen.src, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(seen.mac_src, None);
    }
}

#[cfg(test)]
mod transmissions {
    use super::*;

    #[test]
    fn a_pause_of_200_ms_starts_a_transmission() {
        let ms = Duration::from_millis;
        let starts = transmission_starts(&[ms(0), ms(1), ms(150), ms(1150), ms(1151), ms(3200)]);
        assert_eq!(starts, [ms(0), ms(1150), ms(3200)]);
        assert_eq!(
            [ms(0), ms(150), ms(1149), ms(1150), ms(5000)].map(|t| transmission_of(&starts, t)),
            [0, 0, 0, 1, 2]
        );
        assert_eq!(transmission_of(&starts, Duration::ZERO), 0);
    }
}

/// The join of header-only events when a key names two packets (issue 24 item 3), on crafted
/// frames and events: what the kernel's captures and trace sources deliver, byte for byte.
#[cfg(test)]
mod collisions {
    use super::*;
    use crate::observe::trace::TraceChoice;
    use crate::observe::trace::event::Ifaces;
    use crate::probe::{answer_for, udp::Datagram};

    const C1: [u8; 4] = [192, 168, 0, 2];
    const MASQ: [u8; 4] = [10, 171, 77, 2];
    const EXT: [u8; 4] = [10, 171, 77, 30];

    /// A UDP datagram with IPv4 id `ip_id`, from its IPv4 header on (as a WireGuard or TUN
    /// capture gives it: link type RAW).
    fn datagram(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, ip_id: u16, payload: &[u8]) -> Vec<u8> {
        let builder = etherparse::PacketBuilder::ipv4(src, dst, 64).udp(sport, dport);
        let mut out = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut out, payload).unwrap();
        out[4..6].copy_from_slice(&ip_id.to_be_bytes());
        out
    }

    fn frame(at: &str, ms: u64, data: Vec<u8>) -> Frame {
        Frame { point: at.parse().unwrap(), linktype: pcap::Linktype(12), ts: Duration::from_millis(ms), data }
    }

    fn event(hook: &str, packet: &[u8], clues: Clues) -> TimedEvent {
        let shown = &packet[..packet.len().min(40)];
        let event = TraceEvent {
            netns: "host".into(),
            hook: hook.parse().unwrap(),
            ifaces: Ifaces::default(),
            packet: PacketInfo::from_ip_header(shown).unwrap(),
            payload: None,
            nonce: None,
            source: Some(TraceChoice::Nftrace),
            verdict: None,
            rule: None,
            chain: None,
        };
        TimedEvent { ts: Duration::ZERO, event, clues }
    }

    /// What an nf_tables trace event of `packet` shows: its IPv4 header, the UDP header and 12
    /// bytes of payload, the trace id of its traversal, when it was read.
    fn nft(hook: &str, packet: &[u8], trace_id: u32, read_ms: u64) -> TimedEvent {
        let head = Some(packet[28..packet.len().min(40)].to_vec());
        event(hook, packet, Clues { trace_id: Some(trace_id), head, read_at: Some(Duration::from_millis(read_ms)) })
    }

    /// What a kernel-log line of `packet` shows: headers only.
    fn log(hook: &str, packet: &[u8]) -> TimedEvent {
        event(hook, packet, Clues::default())
    }

    fn sent(nonce: &[u8]) -> Sent {
        Sent {
            nonce: nonce.to_vec(),
            matcher: Box::new(Datagram),
            heard: crate::probe::Heard::reply(Duration::ZERO),
            answer: Some("ext".into()),
        }
    }

    fn hooks(joined: &Joined, probe: usize, packet: usize, d: Direction) -> Vec<String> {
        let pe = joined.probes[probe][packet].of(d);
        pe.path.get("host").map(|p| p.iter().map(|e| e.hook.to_string()).collect()).unwrap_or_default()
    }

    fn run(probes: &mut [Vec<Sent>], frames: &[Frame], host: Vec<TimedEvent>) -> Joined {
        join(probes, &Parsed::new(frames), &BTreeMap::from([("host".to_string(), host)]))
    }

    /// Two packets of the docker topology's UDP probe, MASQUERADEd on the uplink: the answer to
    /// the first and the second request have the same IPv4 id, 5000.
    struct Flow {
        frames: Vec<Frame>,
        reply1: [Vec<u8>; 2],
        request2: [Vec<u8>; 2],
        probes: Vec<Vec<Sent>>,
    }

    fn flow() -> Flow {
        let (n1, n2) = (b"netpath-1111111111111111", b"netpath-2222222222222222");
        let (a1, a2) = (answer_for(n1, "ext"), answer_for(n2, "ext"));
        let request1 = [datagram(C1, 40000, EXT, 9000, 4999, n1), datagram(MASQ, 40000, EXT, 9000, 4999, n1)];
        let reply1 = [datagram(EXT, 9000, MASQ, 40000, 5000, &a1), datagram(EXT, 9000, C1, 40000, 5000, &a1)];
        let request2 = [datagram(C1, 40000, EXT, 9000, 5000, n2), datagram(MASQ, 40000, EXT, 9000, 5000, n2)];
        let reply2 = [datagram(EXT, 9000, MASQ, 40000, 5001, &a2), datagram(EXT, 9000, C1, 40000, 5001, &a2)];
        let mut frames = vec![];
        for (ms, [before, after]) in [(10, &request1), (11, &reply1), (20, &request2), (21, &reply2)] {
            // Requests leave c1 and are masqueraded on host/eth0; answers come back the other way.
            let (first, second) =
                if before[12..16] == C1 { ("c1/eth0", "host/eth0") } else { ("host/eth0", "c1/eth0") };
            frames.push(frame(first, ms, before.clone()));
            frames.push(frame(second, ms, after.clone()));
        }
        let key = |p: &[u8]| key::Key::of(&PacketInfo::from_ip(p).unwrap());
        assert_eq!(key(&reply1[0]), key(&request2[0]), "the two packets share their key");
        Flow { frames, reply1, request2, probes: vec![vec![sent(n1), sent(n2)]] }
    }

    #[test]
    fn a_request_and_an_answer_with_one_ipv4_id_keep_their_own_nftrace_events() {
        let mut f = flow();
        // The answer to packet 1 before and after de-NAT, then request 2 through FORWARD.
        let host = vec![
            nft("raw:PREROUTING:rule:1", &f.reply1[0], 0xaaaa, 12),
            nft("filter:FORWARD:rule:3", &f.reply1[1], 0xaaaa, 12),
            nft("raw:PREROUTING:rule:1", &f.request2[0], 0xbbbb, 21),
            nft("filter:FORWARD:rule:5", &f.request2[0], 0xbbbb, 21),
        ];
        let joined = run(&mut f.probes, &f.frames, host);
        assert!(joined.unattributed.is_empty(), "{:?}", joined.unattributed);
        assert_eq!(hooks(&joined, 0, 0, Direction::Reply), ["raw:PREROUTING:rule:1", "filter:FORWARD:rule:3"]);
        assert_eq!(hooks(&joined, 0, 1, Direction::Request), ["raw:PREROUTING:rule:1", "filter:FORWARD:rule:5"]);
        assert_eq!(hooks(&joined, 0, 0, Direction::Request), Vec::<String>::new());
        assert_eq!(hooks(&joined, 0, 1, Direction::Reply), Vec::<String>::new());
    }

    #[test]
    fn without_payload_or_trace_id_the_addresses_tell_a_request_from_an_answer() {
        let mut f = flow();
        let host = vec![
            log("raw:PREROUTING:policy:2", &f.reply1[0]),
            log("filter:FORWARD:rule:3", &f.reply1[1]),
            log("raw:PREROUTING:policy:2", &f.request2[0]),
            log("nat:POSTROUTING:rule:1", &f.request2[0]),
        ];
        let joined = run(&mut f.probes, &f.frames, host);
        assert!(joined.unattributed.is_empty(), "{:?}", joined.unattributed);
        assert_eq!(hooks(&joined, 0, 0, Direction::Reply), ["raw:PREROUTING:policy:2", "filter:FORWARD:rule:3"]);
        assert_eq!(hooks(&joined, 0, 1, Direction::Request), ["raw:PREROUTING:policy:2", "nat:POSTROUTING:rule:1"]);
    }

    #[test]
    fn a_packet_natted_both_ways_is_matched_field_by_field() {
        // kube-proxy's way: the client's datagram to a Service address is DNATed to an endpoint
        // in PREROUTING and masqueraded in POSTROUTING; FORWARD sees a header no capture saw
        // (the client's source, the endpoint's destination). An answer shares its key.
        let (client, vip, node, endpoint) = ([10, 0, 0, 5], [10, 96, 0, 10], [10, 0, 1, 1], [10, 0, 2, 7]);
        let (n1, n2) = (b"netpath-3333333333333333", b"netpath-4444444444444444");
        let request = [datagram(client, 40000, vip, 80, 77, n1), datagram(node, 40000, endpoint, 8080, 77, n1)];
        let answer = answer_for(n2, "ep");
        let reply = [datagram(endpoint, 8080, node, 40000, 77, &answer), datagram(vip, 80, client, 40000, 77, &answer)];
        let frames = vec![
            frame("client/eth0", 10, request[0].clone()),
            frame("ep/eth0", 10, request[1].clone()),
            frame("ep/eth0", 30, reply[0].clone()),
            frame("client/eth0", 30, reply[1].clone()),
        ];
        let forward = datagram(client, 40000, endpoint, 8080, 77, n1);
        assert!(frames.iter().all(|f| f.info() != PacketInfo::from_ip(&forward)), "no capture saw it");
        let mut probes = vec![vec![sent(n1), sent(n2)]];
        let joined = run(&mut probes, &frames, vec![log("filter:FORWARD:rule:2", &forward)]);
        assert!(joined.unattributed.is_empty(), "{:?}", joined.unattributed);
        assert_eq!(hooks(&joined, 0, 0, Direction::Request), ["filter:FORWARD:rule:2"]);
        assert_eq!(hooks(&joined, 0, 1, Direction::Reply), Vec::<String>::new());
    }

    #[test]
    fn packets_nothing_tells_apart_make_the_evidence_incomplete() {
        // Two probes' crafted datagrams: same addresses, ports, IPv4 id and length.
        let (na, nb) = (b"netpath-aaaaaaaaaaaaaaaa", b"netpath-bbbbbbbbbbbbbbbb");
        let (a, b) = (
            datagram([10, 0, 0, 1], 4000, [10, 0, 0, 2], 53, 7, na),
            datagram([10, 0, 0, 1], 4000, [10, 0, 0, 2], 53, 7, nb),
        );
        // After the router, each was masqueraded to another address.
        let a_out = datagram([10, 0, 9, 1], 4000, [10, 0, 0, 2], 53, 7, na);
        let b_out = datagram([10, 0, 9, 2], 4000, [10, 0, 0, 2], 53, 7, nb);
        let frames = vec![
            frame("r/eth0", 10, a.clone()),
            frame("r/eth1", 10, a_out.clone()),
            frame("r/eth0", 20, b.clone()),
            frame("r/eth1", 20, b_out),
        ];
        let probes = || vec![vec![sent(na)], vec![sent(nb)]];
        let names = ["a", "b"];

        // A kernel-log line before the masquerade fits both: no verdict.
        let joined = run(&mut probes(), &frames, vec![log("filter:FORWARD:policy:1", &a)]);
        assert_eq!(
            joined.unattributed(&names),
            ["netns host: 1 trace events of 1 packet traversals fit more than one probe packet \
              (filter:FORWARD:policy:1 of 10.0.0.1:4000 > 10.0.0.2:53 udp, IPv4 id 7 could be packet 1 \
              request of probe a or packet 1 request of probe b)"]
        );
        assert!(joined.probes.iter().flatten().all(|ex| ex.request.path.is_empty()), "no event given by a guess");
        let error = crate::Error::EvidenceIncomplete {
            losses: joined.unattributed(&names),
            cause: crate::error::Incomplete::Unattributable,
        };
        assert!(
            error.to_string().starts_with("evidence incomplete, no verdict: netns host: 1 trace events"),
            "{error}"
        );

        // The payload start an nf_tables event carries tells them apart.
        let joined = run(&mut probes(), &frames, vec![nft("filter:FORWARD:policy:1", &a, 1, 15)]);
        assert!(joined.unattributed.is_empty());
        assert_eq!(hooks(&joined, 0, 0, Direction::Request), ["filter:FORWARD:policy:1"]);

        // So does a later event of the same traversal (trace id) that shows the masquerade...
        let mut hidden = nft("filter:FORWARD:policy:1", &a, 5, 15);
        let mut after = nft("filter:POSTROUTING:policy:1", &a_out, 5, 15);
        hidden.clues.head = None;
        after.clues.head = None;
        let joined = run(&mut probes(), &frames, vec![hidden.clone(), after]);
        assert!(joined.unattributed.is_empty(), "{:?}", joined.unattributed);
        assert_eq!(
            hooks(&joined, 0, 0, Direction::Request),
            ["filter:FORWARD:policy:1", "filter:POSTROUTING:policy:1"]
        );
        assert!(joined.probes[1][0].request.path.is_empty());
        // ... but not one of another traversal.
        let mut other = nft("filter:POSTROUTING:policy:1", &a_out, 6, 15);
        other.clues.head = None;
        let joined = run(&mut probes(), &frames, vec![hidden, other]);
        assert_eq!(joined.unattributed.len(), 1);
        assert_eq!(hooks(&joined, 0, 0, Direction::Request), ["filter:POSTROUTING:policy:1"]);

        // An event whose key no probe frame has is not probe evidence (and not an error).
        let stranger = datagram([10, 0, 0, 1], 4000, [10, 0, 0, 2], 53, 8, b"dns");
        let joined = run(&mut probes(), &frames, vec![log("filter:FORWARD:policy:1", &stranger)]);
        assert!(joined.unattributed.is_empty());
        assert!(joined.probes.iter().flatten().all(|ex| ex.request.path.is_empty()));
    }
}

/// Which transmission a frame or trace event belongs to, when the trace's clock and the
/// capture's disagree (issue 20: a TCG guest's stalled vCPU).
#[cfg(test)]
mod stalls {
    use super::*;
    use crate::observe::trace::TraceChoice;
    use crate::observe::trace::event::Ifaces;
    use crate::probe::udp::Datagram;

    /// A datagram matcher whose sender sends again, as a TCP SYN's does.
    #[derive(Debug)]
    struct Resent;

    impl crate::probe::Matcher for Resent {
        fn classify(&self, nonce: &[u8], info: &PacketInfo, bytes: &[u8]) -> Option<Direction> {
            Datagram.classify(nonce, info, bytes)
        }
        fn retransmits(&self) -> bool {
            true
        }
        fn clone_box(&self) -> Box<dyn crate::probe::Matcher> {
            Box::new(Resent)
        }
    }

    fn datagram(nonce: &[u8]) -> Vec<u8> {
        let builder = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(40000, 9000);
        let mut out = Vec::with_capacity(builder.size(nonce.len()));
        builder.write(&mut out, nonce).unwrap();
        out
    }

    fn frame(at: &str, ms: u64, data: &[u8]) -> Frame {
        Frame {
            point: at.parse().unwrap(),
            linktype: pcap::Linktype(12),
            ts: Duration::from_millis(ms),
            data: data.to_vec(),
        }
    }

    /// A legacy TRACE record of `data` at `hook`, stamped `ms` on the trace source's clock.
    fn record(hook: &str, ms: u64, data: &[u8]) -> TimedEvent {
        let event = TraceEvent {
            netns: "router".into(),
            hook: hook.parse().unwrap(),
            ifaces: Ifaces::default(),
            packet: PacketInfo::from_ip(data).unwrap(),
            payload: Some(data.to_vec()),
            nonce: None,
            source: Some(TraceChoice::Nflog),
            verdict: None,
            rule: None,
            chain: None,
        };
        TimedEvent { ts: Duration::from_millis(ms), event, clues: Clues::default() }
    }

    fn join_one(frames: &[Frame], events: Vec<TimedEvent>) -> Exchange {
        let nonce = crate::probe::new_nonce();
        let data = datagram(&nonce);
        let fix = |f: &Frame| Frame { data: data.clone(), ..f.clone() };
        let frames: Vec<Frame> = frames.iter().map(fix).collect();
        let events = events
            .into_iter()
            .map(|mut e| {
                e.event.payload = Some(data.clone());
                e
            })
            .collect();
        let sent = Sent { nonce, matcher: Box::new(Resent), heard: crate::probe::Heard::nothing(), answer: None };
        let mut probes = [vec![sent]];
        let joined = join(&mut probes, &Parsed::new(&frames), &BTreeMap::from([("router".to_string(), events)]));
        joined.probes[0][0].clone()
    }

    fn hooks(pe: &PacketEvidence) -> Vec<String> {
        pe.path.get("router").map(|p| p.iter().map(|e| e.hook.to_string()).collect()).unwrap_or_default()
    }

    #[test]
    fn a_pause_inside_one_transmission_invents_no_retransmission() {
        let d = datagram(b"x");
        // Sent once (one sighting at the sender's point); the router's records pause 300 ms
        // between two hooks of that one traversal, and a far capture point sees it late.
        let x = join_one(
            &[frame("client/eth0", 10, &d), frame("server/eth0", 400, &d)],
            vec![record("raw:PREROUTING:policy:2", 11, &d), record("filter:INPUT:policy:1", 320, &d)],
        );
        assert_eq!(hooks(&x.request), ["raw:PREROUTING:policy:2", "filter:INPUT:policy:1"]);
        assert!(x.retransmissions.is_empty(), "{:?}", x.retransmissions);
        assert!(x.request.seen.contains_key(&"server/eth0".parse::<CapturePoint>().unwrap()));
    }

    /// The server's answer to `nonce`, 10.0.0.2:9000 > 10.0.0.1:40000.
    fn answer(nonce: &[u8]) -> Vec<u8> {
        let mut body = b"reply ".to_vec();
        body.extend_from_slice(nonce);
        body.extend_from_slice(b" from server");
        let builder = etherparse::PacketBuilder::ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64).udp(9000, 40000);
        let mut out = Vec::with_capacity(builder.size(body.len()));
        builder.write(&mut out, &body).unwrap();
        out
    }

    /// A reply the server sends again after a pause (a SYN-ACK whose ACK came late) is a reply
    /// retransmission with its own traversal, not a second sighting of the reply; the twin, a
    /// reply seen twice at one point within a millisecond (a hairpin), stays one transmission
    /// with a second sighting.
    #[test]
    fn a_reply_sent_again_is_its_own_traversal() {
        let nonce = crate::probe::new_nonce();
        let (req, rep) = (datagram(&nonce), answer(&nonce));
        let join_with = |frames: Vec<Frame>, events: Vec<TimedEvent>| {
            let sent = Sent {
                nonce: nonce.clone(),
                matcher: Box::new(Resent),
                heard: crate::probe::Heard::nothing(),
                answer: None,
            };
            let mut probes = [vec![sent]];
            let joined = join(&mut probes, &Parsed::new(&frames), &BTreeMap::from([("router".to_string(), events)]));
            joined.probes[0][0].clone()
        };
        let server: CapturePoint = "server/eth0".parse().unwrap();
        let x = join_with(
            vec![
                frame("client/eth0", 10, &req),
                frame("server/eth0", 11, &rep),
                frame("client/eth0", 12, &rep),
                frame("server/eth0", 1011, &rep),
                frame("client/eth0", 1012, &rep),
            ],
            vec![record("raw:PREROUTING:policy:2", 11, &rep), record("raw:PREROUTING:policy:2", 1011, &rep)],
        );
        assert_eq!(hooks(&x.reply), ["raw:PREROUTING:policy:2"]);
        assert!(x.reply.again.is_empty(), "{:?}", x.reply.again);
        assert_eq!(x.reply_retransmissions.len(), 1);
        assert_eq!(hooks(&x.reply_retransmissions[0]), ["raw:PREROUTING:policy:2"]);
        assert!(x.reply_retransmissions[0].seen.contains_key(&server));

        let x = join_with(
            vec![frame("client/eth0", 10, &req), frame("server/eth0", 11, &rep), frame("server/eth0", 12, &rep)],
            vec![record("raw:PREROUTING:policy:2", 11, &rep)],
        );
        assert!(x.reply_retransmissions.is_empty());
        assert_eq!(x.reply.again.get(&server).map(Vec::len), Some(1));
    }

    #[test]
    fn a_second_sending_is_its_own_traversal() {
        let d = datagram(b"x");
        // The twin: sent again 1 s later (two sightings at the sender's point).
        let x = join_one(
            &[frame("client/eth0", 10, &d), frame("client/eth0", 1010, &d)],
            vec![record("raw:PREROUTING:policy:2", 11, &d), record("raw:PREROUTING:policy:2", 1011, &d)],
        );
        assert_eq!(hooks(&x.request), ["raw:PREROUTING:policy:2"]);
        assert_eq!(x.retransmissions.len(), 1);
        assert_eq!(hooks(&x.retransmissions[0]), ["raw:PREROUTING:policy:2"]);
    }
}
