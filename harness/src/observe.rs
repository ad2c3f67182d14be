//! Observers that run while probes are sent: a pcap on every interface, and per traced netns
//! the trace source its backend reports through.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;

use crate::error::{Error, Result};
use crate::evidence::{Frame, TimedEvent};
use crate::firewall::{Backend, ebtables, iptables, run_tool};
use crate::lab::Lab;
use crate::netns::{Netns, NetnsEntry};
use crate::packet::PacketInfo;
use crate::pcap_thread::{PcapThread, Record};
use crate::reader::{ReaderThread, Source};
use crate::scenario::{CapturePoint, Scenario};
use crate::trace::nft_events::{self, HeaderKey};
use crate::trace::nftrace::{NfTraceMsg, NfTraceSocket, RuleIndex};
use crate::{sysctl, trace};

/// Which mechanism reports the hooks of the traced netns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceChoice {
    /// nfnetlink_log: legacy TRACE through the netns's nf_log, ebtables NFLOG rules.
    Nflog,
    /// nf_tables trace events: iptables-nft, native nft, ebtables-nft's bridge chains.
    Nftrace,
}

impl TraceChoice {
    /// The source that sees a backend's hooks.
    pub fn for_backend(backend: Backend) -> TraceChoice {
        match backend {
            Backend::Legacy => TraceChoice::Nflog,
            Backend::Nft => TraceChoice::Nftrace,
        }
    }
}

/// Make a bridge netns's ebtables chains report (before the user's ebtables rules, so the
/// trace rule is first in every chain).
pub fn prepare_bridge(ns: &Netns, trace: TraceChoice) -> Result<()> {
    let tables: Vec<&str> =
        ebtables::CHAINS.iter().map(|(t, _)| *t).filter(|t| *t != "broute" || ebtables::has_table(ns, t)).collect();
    ebtables::restore(ns, &ebtables::trace_rules(&tables))?;
    if trace == TraceChoice::Nftrace {
        // nf_tables reports the bridge chains only for frames with nftrace set.
        run_tool(ns, "nft", &["-f", "-"], Some(&nft_events::bridge_trace_ruleset()))?;
    }
    Ok(())
}

/// Make a netns's iptables chains report, after the user's ruleset is in.
pub fn prepare_iptables(ns: &Netns, rules: &str, backend: Backend, trace: TraceChoice) -> Result<()> {
    if !iptables::has_trace_rule(rules) {
        // --noflush: keep the user's raw table.
        let program = match backend {
            Backend::Legacy => "iptables-legacy-restore",
            Backend::Nft => "iptables-nft-restore",
        };
        run_tool(ns, program, &["-w", "--noflush"], Some(iptables::TRACE_RULESET))?;
    }
    if trace == TraceChoice::Nflog {
        // Legacy TRACE logs through the netns's nf_log; bind IPv4's to nfnetlink_log so the
        // records reach this netns's NFLOG socket instead of the global kernel log.
        sysctl::write(ns, "net.netfilter.nf_log.2", "nfnetlink_log")?;
    }
    Ok(())
}

/// Per file name stem: the linktype and records, for artifacts.
pub type Pcaps = Vec<(String, pcap::Linktype, Vec<Record>)>;

/// Everything observed, once stopped.
pub struct Observed {
    pub frames: Vec<Frame>,
    pub events: BTreeMap<String, Vec<TimedEvent>>,
    pub pcaps: Pcaps,
}

enum TraceReader {
    Nflog(PcapThread),
    NfTrace(NfTraceThread),
}

pub struct Observers {
    captures: Vec<(CapturePoint, PcapThread)>,
    traces: Vec<(String, TraceReader)>,
}

impl Observers {
    /// Start everything and return once every reader is live.
    pub fn start(lab: &Lab, sc: &Scenario, trace: TraceChoice) -> Result<Observers> {
        let mut captures = vec![];
        for point in sc.capture_points() {
            let ns = lab.netns(&point.netns)?;
            let t = PcapThread::start(ns.entry()?, &point.iface).map_err(|message| Error::Capture {
                netns: ns.name().to_string(),
                iface: point.iface.clone(),
                message,
            })?;
            captures.push((point, t));
        }
        let mut traces = vec![];
        for n in sc.netns.iter().filter(|n| n.trace) {
            let ns = lab.netns(&n.name)?;
            let trace_err = |message: String| Error::Trace { netns: ns.name().to_string(), message };
            let reader = match trace {
                TraceChoice::Nflog => {
                    let device = format!("nflog:0,{}", ebtables::TRACE_GROUP);
                    TraceReader::Nflog(PcapThread::start(ns.entry()?, &device).map_err(trace_err)?)
                }
                TraceChoice::Nftrace => TraceReader::NfTrace(NfTraceThread::start(ns.entry()?).map_err(trace_err)?),
            };
            traces.push((n.name.clone(), reader));
        }
        Ok(Observers { captures, traces })
    }

    /// Stop everything after draining what the kernel queued, and turn it into evidence.
    pub fn stop(self, lab: &Lab, ifnames: &BTreeMap<String, BTreeMap<u32, String>>) -> Result<Observed> {
        let mut frames = vec![];
        let mut pcaps = vec![];
        let mut errors = vec![];
        for (point, t) in self.captures {
            let linktype = t.linktype;
            match t.stop() {
                Ok(records) => {
                    frames.extend(records.iter().map(|r| Frame {
                        point: point.clone(),
                        ts: r.ts,
                        data: r.data.clone(),
                    }));
                    pcaps.push((format!("{}_{}", point.netns, point.iface), linktype, records));
                }
                Err(message) => errors.push(Error::Capture { netns: point.netns, iface: point.iface, message }),
            }
        }
        let nonces = NonceByHeader::from_frames(&frames);
        let mut events = BTreeMap::new();
        let empty = BTreeMap::new();
        for (netns, reader) in self.traces {
            let names = ifnames.get(&netns).unwrap_or(&empty);
            match reader {
                TraceReader::Nflog(t) => {
                    let linktype = t.linktype;
                    match t.stop() {
                        Ok(records) => {
                            let evs = records
                                .iter()
                                .filter_map(|r| {
                                    let rec = trace::nflog::parse_record(&r.data).ok()?;
                                    let event = trace::nflog::to_event(&rec, &netns, names)?;
                                    Some(TimedEvent { ts: r.ts, event })
                                })
                                .collect();
                            events.insert(netns.clone(), evs);
                            pcaps.push((format!("{netns}_nflog"), linktype, records));
                        }
                        Err(message) => errors.push(Error::Trace { netns, message }),
                    }
                }
                TraceReader::NfTrace(t) => match t.stop() {
                    Ok(msgs) => {
                        let ns = lab.netns(&netns)?;
                        let index = rule_index(ns)?;
                        let evs = nft_events::to_events(&msgs, &netns, &index, names, &|p| nonces.get(p))
                            .into_iter()
                            .map(|event| TimedEvent { ts: Default::default(), event })
                            .collect();
                        events.insert(netns.clone(), evs);
                    }
                    Err(message) => errors.push(Error::Trace { netns, message }),
                },
            }
        }
        if !errors.is_empty() {
            return Err(Error::Many(errors));
        }
        Ok(Observed { frames, events, pcaps })
    }
}

/// The rules of a netns by handle, with iptables-nft's own text for its tables.
fn rule_index(ns: &crate::netns::Netns) -> Result<RuleIndex> {
    let json = run_tool(ns, "nft", &["-j", "list", "ruleset"], None)?;
    let index = RuleIndex::from_nft_json(&json)
        .map_err(|e| Error::Trace { netns: ns.name().to_string(), message: format!("nft -j list ruleset: {e}") })?;
    let save = run_tool(ns, "iptables-nft-save", &[], None).unwrap_or_default();
    Ok(index.with_iptables_save(&save))
}

/// Probe nonces by the header fields that survive NAT, learnt from captured frames that carry
/// the nonce in their payload.
struct NonceByHeader(BTreeMap<HeaderKey, Vec<u8>>);

impl NonceByHeader {
    fn from_frames(frames: &[Frame]) -> NonceByHeader {
        let mut map = BTreeMap::new();
        for f in frames {
            let Some(nonce) = crate::probe::find_nonce(&f.data) else { continue };
            if let Some(key) = PacketInfo::from_ethernet(&f.data).as_ref().and_then(HeaderKey::of) {
                map.insert(key, nonce);
            }
        }
        NonceByHeader(map)
    }

    fn get(&self, p: &PacketInfo) -> Option<Vec<u8>> {
        self.0.get(&HeaderKey::of(p)?).cloned()
    }
}

/// An nf_tables trace socket read by a thread inside the netns until stopped.
struct NfTraceThread(ReaderThread<NfTraceMsg>);

impl NfTraceThread {
    fn start(ns: NetnsEntry) -> std::result::Result<NfTraceThread, String> {
        let open = || {
            let sock = NfTraceSocket::open().map_err(|e| format!("open NFNLGRP_NFTRACE socket: {e}"))?;
            Ok((TraceSocket(sock), ()))
        };
        Ok(NfTraceThread(ReaderThread::start(ns, "nftrace".into(), open)?.0))
    }

    fn stop(self) -> std::result::Result<Vec<NfTraceMsg>, String> {
        self.0.stop()
    }
}

struct TraceSocket(NfTraceSocket);

impl Source for TraceSocket {
    type Item = NfTraceMsg;
    fn fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
    fn drain(&mut self, out: &mut Vec<NfTraceMsg>) -> std::result::Result<(), String> {
        out.extend(self.0.recv_all().map_err(|e| format!("read trace events: {e}"))?);
        match self.0.overruns() {
            // A lost event would make a path look shorter than it was: fail, never guess.
            0 => Ok(()),
            n => Err(format!("the kernel dropped trace events ({n} overruns)")),
        }
    }
}
