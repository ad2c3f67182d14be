//! Evidence of one probe: for each packet of the flow, request and reply, the hooks it met
//! (per netns, in order) and what it carried at each capture point. Joined by payload nonce.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::packet::{PacketInfo, contains};
use crate::scenario::{CapturePoint, Direction};
use crate::trace::TraceEvent;

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
}

/// Gather the evidence of each (nonce, replied) packet of a flow from everything observed.
/// `direction` tells request from reply for the probe's protocol.
pub fn join(
    packets: &[(Vec<u8>, bool)],
    frames: &[Frame],
    events: &BTreeMap<String, Vec<TimedEvent>>,
    direction: impl Fn(&PacketInfo) -> Option<Direction>,
) -> Vec<Exchange> {
    packets
        .iter()
        .enumerate()
        .map(|(i, (nonce, replied))| {
            let mut ex = Exchange {
                packet: i as u16 + 1,
                nonce: nonce.clone(),
                request: PacketEvidence::default(),
                reply: PacketEvidence::default(),
                replied: *replied,
            };
            for (netns, evs) in events {
                for te in evs {
                    let ours = te.event.nonce.as_deref() == Some(nonce.as_slice())
                        || te.event.payload.as_deref().is_some_and(|p| contains(p, nonce));
                    if !ours {
                        continue;
                    }
                    if let Some(d) = direction(&te.event.packet) {
                        let pe = match d {
                            Direction::Request => &mut ex.request,
                            Direction::Reply => &mut ex.reply,
                        };
                        pe.path.entry(netns.clone()).or_default().push(te.event.clone());
                    }
                }
            }
            for f in frames {
                if !contains(&f.data, nonce) {
                    continue;
                }
                let Some(info) = PacketInfo::from_ethernet(&f.data) else { continue };
                if let Some(d) = direction(&info) {
                    let pe = match d {
                        Direction::Request => &mut ex.request,
                        Direction::Reply => &mut ex.reply,
                    };
                    pe.seen.entry(f.point.clone()).or_insert(info);
                }
            }
            ex
        })
        .collect()
}
