//! Evidence of one probe: for each packet of the flow, request and reply, the hooks it met
//! (per netns, in order) and what it carried at each capture point. Joined by payload nonce.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::packet::PacketInfo;
use crate::probe::{Ident, Sent, find_nonce};
use crate::scenario::{CapturePoint, Direction};
use crate::trace::TraceEvent;
use crate::trace::nft_events::HeaderKey;

/// A frame a pcap saw.
#[derive(Debug, Clone)]
pub struct Frame {
    pub point: CapturePoint,
    pub ts: Duration,
    pub data: Vec<u8>,
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

/// Gather the evidence of each packet a probe sent from everything observed: frames and trace
/// events that carry the packet's nonce or its TCP sequence numbers are classified directly;
/// trace events that carry headers only (nf_tables, kernel log) are matched by the header
/// fields NAT leaves alone, learnt from the frames.
pub fn join(sent: &mut [Sent], frames: &[Frame], events: &BTreeMap<String, Vec<TimedEvent>>) -> Vec<Exchange> {
    let infos: Vec<Option<PacketInfo>> = frames.iter().map(|f| PacketInfo::from_ethernet(&f.data)).collect();
    for info in infos.iter().flatten() {
        for s in sent.iter_mut() {
            s.learn(info);
        }
    }
    let by_nonce: BTreeMap<&[u8], usize> = sent.iter().enumerate().map(|(i, s)| (s.nonce.as_slice(), i)).collect();
    let unnonced: Vec<usize> = sent
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.ident, Ident::Connection { .. } | Ident::Segment { .. }))
        .map(|(i, _)| i)
        .collect();
    let classify = |info: &PacketInfo, bytes: &[u8]| -> Option<(usize, Direction)> {
        let candidates: Vec<usize> = match find_nonce(bytes).and_then(|n| by_nonce.get(n.as_slice()).copied()) {
            Some(i) => vec![i],
            None => unnonced.clone(),
        };
        candidates.into_iter().find_map(|i| sent[i].classify(info, bytes).map(|d| (i, d)))
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
    let mut by_header: BTreeMap<HeaderKey, (usize, Direction)> = BTreeMap::new();
    for (f, info) in frames.iter().zip(&infos) {
        let Some(info) = info else { continue };
        let Some((i, d)) = classify(info, &f.data) else { continue };
        if let Some(key) = HeaderKey::of(info) {
            by_header.insert(key, (i, d));
        }
        let pe = out[i].of_mut(d);
        pe.seen.entry(f.point.clone()).or_insert_with(|| info.clone());
    }
    for (netns, evs) in events {
        for te in evs {
            let ev = &te.event;
            let hit = match &ev.payload {
                Some(bytes) => classify(&ev.packet, bytes),
                None => classify(&ev.packet, &[])
                    .or_else(|| HeaderKey::of(&ev.packet).and_then(|k| by_header.get(&k).copied())),
            };
            if let Some((i, d)) = hit {
                out[i].of_mut(d).path.entry(netns.clone()).or_default().push(ev.clone());
            }
        }
    }
    out
}
