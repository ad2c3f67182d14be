//! NFLOG records (libpcap's DLT_NFLOG) turned into trace events: legacy iptables TRACE through
//! a netns's nf_log bound to nfnetlink_log (group 0), ebtables `--nflog-group` rules (group 1).

use std::collections::BTreeMap;
use std::time::Duration;

use super::event::{Hook, Ifaces, TraceEvent};
use super::source::{Collected, Opening, Stopping, TraceChoice, TraceReader, TraceSource, Traced};
use crate::caps::Feature;
use crate::error::{Error, Result};
use crate::evidence::TimedEvent;
use crate::evidence::packet::PacketInfo;
use crate::firewall::ebtables::{self, TraceVia};
use crate::firewall::{Backend, Family, iptables};
use crate::lab::{netns::Netns, sysctl};
use crate::observe::capture::PcapThread;
use crate::observe::drops::DropPoints;
use crate::scenario::NetnsSpec;

// Attribute types of include/uapi/linux/netfilter/nfnetlink_log.h.
const NFULA_PACKET_HDR: u16 = 1;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_IFINDEX_PHYSINDEV: u16 = 6;
const NFULA_IFINDEX_PHYSOUTDEV: u16 = 7;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
const NFULA_SEQ: u16 = 12;

/// The fields of one NFLOG record that a trace needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NflogRecord {
    /// Protocol family of the hook (2 = IPv4, 7 = bridge).
    pub family: u8,
    pub group: u16,
    pub prefix: Option<String>,
    pub indev: Option<u32>,
    pub outdev: Option<u32>,
    pub physindev: Option<u32>,
    pub physoutdev: Option<u32>,
    pub hw_protocol: Option<u16>,
    pub payload: Option<Vec<u8>>,
    /// `NFULA_SEQ`: the group's record counter, present once [`sequence_config`] is in force;
    /// a gap means the kernel dropped records (the socket's buffer was full).
    pub seq: Option<u32>,
}

/// Parse one DLT_NFLOG record: a 4-byte header (family, version, big-endian group) then TLVs
/// whose length and type are in host order and whose values are in network order.
pub fn parse_record(data: &[u8]) -> Result<NflogRecord, String> {
    if data.len() < 4 {
        return Err(format!("NFLOG record of {} bytes is shorter than its header", data.len()));
    }
    let mut rec = NflogRecord { family: data[0], group: u16::from_be_bytes([data[2], data[3]]), ..Default::default() };
    let mut rest = &data[4..];
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]);
        if len < 4 || len > rest.len() {
            return Err(format!("NFLOG attribute {kind} has length {len} with {} bytes left", rest.len()));
        }
        let value = &rest[4..len];
        let be32 = || value.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        match kind {
            NFULA_PACKET_HDR => rec.hw_protocol = value.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])),
            NFULA_IFINDEX_INDEV => rec.indev = be32(),
            NFULA_IFINDEX_OUTDEV => rec.outdev = be32(),
            NFULA_IFINDEX_PHYSINDEV => rec.physindev = be32(),
            NFULA_IFINDEX_PHYSOUTDEV => rec.physoutdev = be32(),
            NFULA_PAYLOAD => rec.payload = Some(value.to_vec()),
            NFULA_SEQ => rec.seq = be32(),
            NFULA_PREFIX => {
                let text = value.split(|b| *b == 0).next().unwrap_or_default();
                rec.prefix = Some(String::from_utf8_lossy(text).into_owned());
            }
            _ => {}
        }
        let padded = (len + 3) & !3;
        rest = rest.get(padded..).unwrap_or_default();
    }
    Ok(rec)
}

/// The `NFULNL_MSG_CONFIG` request that makes NFLOG group `group` number its records
/// (`NFULA_CFG_FLAGS = NFULNL_CFG_F_SEQ`), to be sent on the socket bound to that group (the
/// kernel accepts a group's config only from its own socket). No ack is asked for: libpcap
/// reads that socket, and an error would come back to it only if the group were not bound.
pub fn sequence_config(group: u16) -> Vec<u8> {
    const NFNL_SUBSYS_ULOG: u16 = 4;
    const NFULNL_MSG_CONFIG: u16 = 1;
    const NFULA_CFG_FLAGS: u16 = 6;
    const NFULNL_CFG_F_SEQ: u16 = 1;
    const NLM_F_REQUEST: u16 = 1;
    let mut msg = Vec::with_capacity(28);
    msg.extend_from_slice(&28u32.to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG).to_ne_bytes());
    msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    // nfgenmsg: AF_UNSPEC, version 0, the group in network order.
    msg.extend_from_slice(&[0, 0]);
    msg.extend_from_slice(&group.to_be_bytes());
    // NFULA_CFG_FLAGS: a big-endian u16, padded to 4 bytes.
    msg.extend_from_slice(&6u16.to_ne_bytes());
    msg.extend_from_slice(&NFULA_CFG_FLAGS.to_ne_bytes());
    msg.extend_from_slice(&NFULNL_CFG_F_SEQ.to_be_bytes());
    msg.extend_from_slice(&[0, 0]);
    msg
}

/// How many records of each group the sequence numbers say are missing: the kernel numbers a
/// group's records from 0, so a record's number minus the count seen before it is what was
/// lost. Records without a number (sent before [`sequence_config`] took effect) count nothing.
pub fn lost_records<'a>(records: impl IntoIterator<Item = &'a NflogRecord>) -> BTreeMap<u16, u64> {
    let mut next: BTreeMap<u16, u64> = BTreeMap::new();
    let mut lost: BTreeMap<u16, u64> = BTreeMap::new();
    for r in records {
        let Some(seq) = r.seq else { continue };
        let want = next.entry(r.group).or_insert(0);
        let seq = u64::from(seq);
        if seq > *want {
            *lost.entry(r.group).or_default() += seq - *want;
        }
        *want = seq.max(*want) + 1;
    }
    lost
}

/// The hook a TRACE or trace-rule prefix names (`TRACE: raw:PREROUTING:policy:2 `), or None for
/// NFLOG records that are not netpath trace records.
pub fn hook_of_prefix(prefix: &str) -> Option<Hook> {
    prefix.trim().strip_prefix("TRACE:")?.trim().parse().ok()
}

/// Turn a record into an event of netns `netns`, naming interfaces with `ifnames`.
pub fn to_event(rec: &NflogRecord, netns: &str, ifnames: &BTreeMap<u32, String>) -> Option<TraceEvent> {
    let hook = hook_of_prefix(rec.prefix.as_deref()?)?;
    let name = |i: Option<u32>| i.map(|i| ifnames.get(&i).cloned().unwrap_or_else(|| format!("if{i}")));
    let payload = rec.payload.clone();
    let packet = payload.as_deref().and_then(PacketInfo::from_ip).unwrap_or_default();
    let ifaces = match hook {
        // ebtables names the bridge port as IN/OUT (ebt_log), as nf_tables' bridge family does.
        Hook::Eb { .. } => Ifaces {
            indev: name(rec.physindev.or(rec.indev)),
            outdev: name(rec.physoutdev.or(rec.outdev)),
            ..Default::default()
        },
        Hook::Xt { .. } => Ifaces {
            indev: name(rec.indev),
            outdev: name(rec.outdev),
            physindev: name(rec.physindev),
            physoutdev: name(rec.physoutdev),
        },
    };
    Some(TraceEvent {
        netns: netns.to_string(),
        hook,
        ifaces,
        packet,
        payload,
        nonce: None,
        source: Some(TraceChoice::Nflog),
        verdict: None,
        rule: None,
        chain: None,
    })
}

/// nfnetlink_log as a trace source: legacy TRACE through the netns's nf_log slots, bound to
/// nfnetlink_log (one NFLOG group 0 for both families, each record naming its family), and the
/// ebtables trace rules' `--nflog-group 1`, read from one libpcap `nflog:0,1` handle per netns.
pub struct NflogSource;

impl TraceSource for NflogSource {
    fn choice(&self) -> TraceChoice {
        TraceChoice::Nflog
    }
    fn name(&self) -> &'static str {
        "nflog"
    }
    fn origin(&self) -> &'static str {
        "Nflog"
    }
    fn check_backend(&self, backend: Backend) -> std::result::Result<(), String> {
        legacy_only(backend, self.name())
    }
    fn features(&self, netns: &Traced) -> Vec<Feature> {
        let mut need = vec![Feature::Nflog];
        if netns.families.contains(&Family::V6) {
            need.push(Feature::NflogIpv6);
        }
        need
    }
    fn ebtables_via(&self) -> TraceVia {
        TraceVia::Nflog
    }
    fn prepare_iptables(&self, ns: &Netns, family: Family) -> Result<()> {
        // Legacy TRACE logs through the netns's nf_log of the family (`nf_log.2`, `nf_log.10`):
        // bound to nfnetlink_log, the records reach this netns's NFLOG socket instead of the
        // global kernel log.
        sysctl::write(ns, &family.nf_log_sysctl(), "nfnetlink_log")
    }
    fn open(&self, cx: &Opening, netns: &[&NetnsSpec]) -> Result<Option<Box<dyn TraceReader>>> {
        let [n] = netns else { unreachable!("a per-netns source is opened for one netns") };
        let ns = cx.lab.netns(&n.name)?;
        let trace_err = |message: String| Error::Trace { netns: ns.name().to_string(), message };
        let device = format!("nflog:0,{}", ebtables::TRACE_GROUP);
        let points = n
            .iptables_rulesets()
            .map(|(family, rules)| {
                let shift = u32::from(!iptables::has_trace_rule(rules));
                (family.nfproto(), DropPoints::from_iptables(rules, shift))
            })
            .collect();
        let watch = Box::new(cx.drops.nflog_watcher(points));
        let t = PcapThread::spawn(ns.entry()?, &device, Some(watch)).and_then(|t| t.ready());
        Ok(Some(Box::new(NflogReader { netns: n.name.clone(), thread: t.map_err(trace_err)? })))
    }
}

/// A netns's `nflog:0,1` handle, read until stopped.
struct NflogReader {
    netns: String,
    thread: PcapThread,
}

impl TraceReader for NflogReader {
    fn signal(&self) {
        self.thread.signal()
    }
    fn stop(self: Box<Self>, cx: &Stopping, out: &mut Collected) -> Result<()> {
        let NflogReader { netns, thread } = *self;
        let empty = BTreeMap::new();
        let names = cx.ifnames.get(&netns).unwrap_or(&empty);
        let linktype = thread.linktype;
        let records = match thread.stop() {
            Ok(records) => records,
            Err(message) => {
                out.errors.push(Error::Trace { netns, message });
                return Ok(());
            }
        };
        let parsed: Vec<(Duration, NflogRecord)> =
            records.iter().filter_map(|r| Some((r.ts, parse_record(&r.data).ok()?))).collect();
        for (group, n) in lost_records(parsed.iter().map(|(_, r)| r)) {
            out.errors.push(Error::Trace {
                netns: netns.clone(),
                message: format!("{}{n} NFLOG records of group {group} (sequence gaps)", crate::observe::reader::LOST),
            });
        }
        let mut evs: Vec<TimedEvent> =
            parsed.iter().filter_map(|(ts, rec)| Some(TimedEvent::new(*ts, to_event(rec, &netns, names)?))).collect();
        super::legacy_facts::attach(cx.lab.netns(&netns)?, &mut evs)?;
        out.events.insert(netns.clone(), evs);
        out.pcaps.push((format!("{netns}_nflog"), linktype, records));
        Ok(())
    }
}

/// Why a source reading legacy TRACE through nf_log cannot serve `backend` nft.
pub(crate) fn legacy_only(backend: Backend, name: &str) -> std::result::Result<(), String> {
    match backend {
        Backend::Legacy => Ok(()),
        Backend::Nft => Err(format!(
            "iptables-nft TRACE is reported only as nf_tables trace events, never through nf_log: \
             {name} would miss every iptables hook; with backend nft trace with nftrace (the default)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_gaps_count_the_lost_records_per_group() {
        let rec = |group, seq| NflogRecord { group, seq, ..Default::default() };
        let records =
            [rec(0, Some(0)), rec(1, Some(0)), rec(0, Some(1)), rec(0, Some(4)), rec(1, None), rec(1, Some(1))];
        assert_eq!(lost_records(&records), BTreeMap::from([(0, 2)]));
        assert!(lost_records(&[rec(0, Some(0)), rec(0, Some(1))]).is_empty());
        // A first record numbered 3: three were lost before it.
        assert_eq!(lost_records(&[rec(1, Some(3))]), BTreeMap::from([(1, 3)]));
    }

    #[test]
    fn sequence_config_is_a_well_formed_nfnetlink_request() {
        let m = sequence_config(1);
        assert_eq!(m.len(), 28);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 28);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), 0x0401);
        assert_eq!(&m[18..20], &[0, 1], "the group, big-endian");
        assert_eq!(&m[24..26], &[0, 1], "NFULNL_CFG_F_SEQ, big-endian");
    }
    use crate::observe::trace::event::RuleKind;

    fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = 4 + value.len();
        let mut v = (len as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        v.resize((len + 3) & !3, 0);
        v
    }

    fn record() -> Vec<u8> {
        let mut r = vec![2, 0, 0, 0];
        r.extend(tlv(NFULA_PACKET_HDR, &[0x08, 0x00, 0, 0]));
        r.extend(tlv(NFULA_PREFIX, b"TRACE: filter:FORWARD:rule:6 \0"));
        r.extend(tlv(NFULA_IFINDEX_INDEV, &3u32.to_be_bytes()));
        r.extend(tlv(NFULA_IFINDEX_OUTDEV, &3u32.to_be_bytes()));
        r.extend(tlv(NFULA_IFINDEX_PHYSINDEV, &5u32.to_be_bytes()));
        // An IPv4 header and an ICMP echo request header (id 90, seq 1).
        let ip = [0x45, 0, 0, 28, 0, 1, 0, 0, 64, 1, 0, 0, 192, 168, 0, 2, 192, 168, 0, 3];
        let icmp = [8, 0, 0, 0, 0, 90, 0, 1];
        r.extend(tlv(NFULA_PAYLOAD, &[&ip[..], &icmp[..]].concat()));
        r
    }

    #[test]
    fn parses_a_trace_record() {
        let rec = parse_record(&record()).unwrap();
        assert_eq!(rec.family, 2);
        assert_eq!(rec.group, 0);
        assert_eq!(rec.prefix.as_deref(), Some("TRACE: filter:FORWARD:rule:6 "));
        assert_eq!((rec.indev, rec.outdev, rec.physindev, rec.physoutdev), (Some(3), Some(3), Some(5), None));
        let names = BTreeMap::from([(3, "docker0".to_string()), (5, "veth1".to_string())]);
        let ev = to_event(&rec, "host", &names).unwrap();
        assert_eq!(ev.hook, Hook::xt("filter", "FORWARD", RuleKind::Rule, 6));
        assert_eq!(ev.ifaces.indev.as_deref(), Some("docker0"));
        assert_eq!(ev.ifaces.physindev.as_deref(), Some("veth1"));
        assert_eq!(ev.packet.src.unwrap().to_string(), "192.168.0.2");
    }

    #[test]
    fn ignores_records_that_are_not_traces_and_survives_garbage() {
        let mut r = vec![2, 0, 0, 5];
        r.extend(tlv(NFULA_PREFIX, b"dropped: \0"));
        let rec = parse_record(&r).unwrap();
        assert_eq!(rec.group, 5);
        assert!(to_event(&rec, "x", &BTreeMap::new()).is_none());
        let full = record();
        for n in 0..full.len() {
            let _ = parse_record(&full[..n]);
        }
        assert!(parse_record(&[2, 0, 0, 0, 200, 0, 1, 0]).is_err());
    }

    #[test]
    fn eb_prefix_names_a_bridge_hook() {
        assert_eq!(hook_of_prefix("TRACE: eb:nat:PREROUTING"), Some(Hook::eb("nat", "PREROUTING")));
        assert_eq!(
            hook_of_prefix("TRACE: raw:PREROUTING:policy:2 "),
            Some(Hook::xt("raw", "PREROUTING", RuleKind::Policy, 2))
        );
        assert_eq!(hook_of_prefix("something else"), None);
    }
}
