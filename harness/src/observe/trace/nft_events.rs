//! nf_tables trace messages turned into [`TraceEvent`]s named like legacy TRACE lines, and
//! joined to probes by header (the trace carries headers only, never the payload's nonce).

use std::collections::BTreeMap;

use super::event::{Hook, Ifaces, RuleKind, TraceEvent, TraceSource};
use super::nftrace::{NfTraceMsg, RuleIndex, TraceType, family};
use crate::evidence::packet::{L4, PacketInfo};

/// The table netpath adds to set `nftrace` on every packet of a traced netns, so the bridge
/// family's chains (ebtables-nft's) report too; its own events are not part of any path.
pub const TRACE_TABLE: &str = "netpath_trace";

/// The nft script that makes that table in `family`: `bridge` in a netns with a bridge (so
/// ebtables-nft's chains report), `inet` in one with a native nft ruleset; at a priority before
/// raw (-300) and conntrack (-200).
pub fn trace_ruleset(family: &str) -> String {
    format!(
        "table {family} {TRACE_TABLE} {{\n\
         \tchain pre {{ type filter hook prerouting priority -400; meta nftrace set 1; }}\n\
         \tchain out {{ type filter hook output priority -400; meta nftrace set 1; }}\n\
         }}\n"
    )
}

/// What identifies a packet across hooks and NAT: the IPv4 id, protocol and the part of the
/// L4 header NAT leaves alone (ICMP type and sequence; TCP flags, sequence and ack numbers,
/// which also tell apart SYN-ACKs, whose IP id Linux sets to 0).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderKey {
    ip_id: u16,
    proto: u8,
    l4: Option<(String, u32, u32)>,
}

impl HeaderKey {
    pub fn of(info: &PacketInfo) -> Option<HeaderKey> {
        let l4 = match &info.l4 {
            L4::Icmp { kind, seq, .. } => Some((kind.to_string(), seq.unwrap_or(0) as u32, 0)),
            L4::Tcp { flags, seq, ack, .. } => Some((flags.clone(), seq.unwrap_or(0), ack.unwrap_or(0))),
            _ => None,
        };
        Some(HeaderKey { ip_id: info.ip_id?, proto: info.proto?, l4 })
    }
}

/// Turn one netns's trace messages into events, in the order the kernel sent them. Each event
/// gets the headers of the latest message of the same packet (trace id) that carried them, and
/// `nonce_of` resolves a header to the nonce of the probe packet it belongs to.
pub fn to_events(
    msgs: &[NfTraceMsg],
    netns: &str,
    index: &RuleIndex,
    ifnames: &BTreeMap<u32, String>,
    nonce_of: &dyn Fn(&PacketInfo) -> Option<Vec<u8>>,
) -> Vec<TraceEvent> {
    let mut headers: BTreeMap<u32, PacketInfo> = BTreeMap::new();
    // The kernel sends interfaces, like headers, only with a packet's first event in a hook.
    let mut ifaces: BTreeMap<u32, (Option<u32>, Option<u32>)> = BTreeMap::new();
    let name = |i: Option<u32>| i.map(|i| ifnames.get(&i).cloned().unwrap_or_else(|| format!("if{i}")));
    let mut out = vec![];
    for msg in msgs {
        if let Some(info) = msg.headers() {
            headers.insert(msg.id, info);
        }
        if msg.iif.is_some() || msg.oif.is_some() {
            ifaces.insert(msg.id, (msg.iif, msg.oif));
        }
        let Some(hook) = hook_of(msg, index) else { continue };
        let (iif, oif) = ifaces.get(&msg.id).copied().unwrap_or_default();
        let packet = headers.get(&msg.id).cloned().unwrap_or_default();
        let nonce = nonce_of(&packet);
        out.push(TraceEvent {
            netns: netns.to_string(),
            hook,
            ifaces: Ifaces { indev: name(iif), outdev: name(oif), ..Default::default() },
            packet,
            payload: None,
            nonce,
            source: TraceSource::NfTrace,
        });
    }
    out
}

/// The legacy-style name of a message: iptables-nft chains as `table:chain:kind:N`; in the
/// bridge family, the first rule of an ebtables chain (netpath's trace rule) as `eb:table:chain`.
fn hook_of(msg: &NfTraceMsg, index: &RuleIndex) -> Option<Hook> {
    if msg.table == TRACE_TABLE {
        return None;
    }
    match msg.family {
        family::BRIDGE => {
            let first = msg.trace_type == TraceType::Rule && index.rule_of(msg).is_some_and(|r| r.position == 1);
            first.then(|| Hook::eb(&msg.table, &msg.chain))
        }
        family::IPV4 | family::INET => {
            let (table, chain, kind, num) = index.name(msg)?;
            let kind = match kind {
                "rule" => RuleKind::Rule,
                "return" => RuleKind::Return,
                _ => RuleKind::Policy,
            };
            Some(Hook::xt(&table, &chain, kind, num))
        }
        _ => None,
    }
}
