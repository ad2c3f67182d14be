//! The trace sources behind one trait: what each needs of the kernel, what it sets up in a
//! traced netns, and whether it can see a backend's TRACE at all. Each source's implementation
//! lives in its own file (`nflog.rs`, `nft_events.rs`, `kmsg.rs`), beside its decoder, and is
//! listed once in [`SOURCES`]; [`TraceChoice`] is the value that names one (scenario files, the
//! command line, a run's options, and each event's origin).
//!
//! Adding a source is one new file with a [`TraceSource`] (its features, per-netns setup, and
//! [`TraceSource::open`] returning its [`TraceReader`], which turns what it read into events and
//! reports its losses), its line in [`SOURCES`] and its variant in [`TraceChoice`]: nothing
//! else names a source (the observers, the rule loading and `requires` go through the trait;
//! only the CLI's `--trace` help text lists the names). The unit tests fail if a variant has no
//! source in [`SOURCES`].
//!
//! | source | backend | setup in a traced netns | scope |
//! |---|---|---|---|
//! | [`TraceChoice::Nflog`] | legacy (default) | `nf_log.2`/`nf_log.10 = nfnetlink_log`, ebtables `--nflog-group 1` rules | per netns |
//! | [`TraceChoice::Nftrace`] | nft (default) | ebtables `--nflog-group 1` rules and a bridge `nftrace` table | per netns |
//! | [`TraceChoice::Kmsg`] | legacy | `nf_log.2 = nf_log_ipv4`, `nf_log.10 = nf_log_ipv6`, ebtables `--log --log-level 6 --log-ip` rules | global: [`crate::lab::global_sysctl`] |

use std::collections::BTreeMap;

use crate::caps::Feature;
use crate::error::{Error, Result};
use crate::evidence::key::Nonces;
use crate::evidence::{Frame, TimedEvent};
use crate::firewall::ebtables::TraceVia;
use crate::firewall::{Backend, Family};
use crate::lab::Lab;
use crate::lab::netns::Netns;
use crate::observe::Pcaps;
use crate::observe::drops::Drops;
use crate::scenario::{NetnsSpec, Scenario};

/// Which mechanism reports the hooks of the traced netns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceChoice {
    /// nfnetlink_log: legacy TRACE through the netns's nf_log, ebtables NFLOG rules.
    Nflog,
    /// nf_tables trace events: iptables-nft, native nft, ebtables-nft's bridge chains.
    Nftrace,
    /// The kernel log (`/dev/kmsg`): legacy TRACE through the netns's nf_log bound to the syslog
    /// logger, ebtables `--log` rules; global, so it holds the kernel-log lock while it observes.
    Kmsg,
}

/// Every source, once.
pub const SOURCES: [&dyn TraceSource; 3] =
    [&super::nflog::NflogSource, &super::nft_events::NftraceSource, &super::kmsg::KmsgSource];

/// What a traced netns has, which decides what a source needs and sets up there.
#[derive(Debug, Clone, Default)]
pub struct Traced {
    /// A bridge (netpath's ebtables trace rules go in).
    pub has_bridge: bool,
    /// Rules netpath puts TRACE or trace rules into ([`crate::scenario::Scenario::has_trace_rules`]).
    pub has_trace_rules: bool,
    /// The families of its `iptables`/`ip6tables` rulesets.
    pub families: Vec<Family>,
}

/// One trace source.
pub trait TraceSource: Sync {
    /// The value that names it.
    fn choice(&self) -> TraceChoice;
    /// The name a scenario or command line gives it.
    fn name(&self) -> &'static str;
    /// How serialized evidence names it as an event's origin (`Nflog`, `NfTrace`, `Kmsg`).
    fn origin(&self) -> &'static str;
    /// Whether it sees the iptables TRACE of `backend`; `Err` says why not. (ebtables chains
    /// report to every source under both backends.)
    fn check_backend(&self, backend: Backend) -> std::result::Result<(), String>;
    /// The kernel features reading a traced netns that has `netns` needs.
    fn features(&self, netns: &Traced) -> Vec<Feature>;
    /// How netpath's ebtables trace rules report to it.
    fn ebtables_via(&self) -> TraceVia;
    /// Set up a traced netns with a bridge, once the ebtables trace rules are in.
    fn prepare_bridge(&self, _ns: &Netns) -> Result<()> {
        Ok(())
    }
    /// Set up a traced netns's iptables chains of `family`, once the TRACE rules are in.
    fn prepare_iptables(&self, ns: &Netns, family: Family) -> Result<()>;
    /// Set up a traced netns with a native nft ruleset.
    fn prepare_nft(&self, ns: &Netns) -> Result<()> {
        Err(Error::Trace {
            netns: ns.name().to_string(),
            message: format!(
                "a native nft ruleset reports only through nf_tables trace events (trace source nftrace), not {}",
                self.name()
            ),
        })
    }
    /// Whether one reader sees every traced netns at once (the kernel log): as the run's source
    /// it is then the only one, opened before any capture (it may wait its turn) with every
    /// traced netns; a per-netns source is opened once per traced netns.
    fn global(&self) -> bool {
        false
    }
    /// Start reading `netns` and return once the reader is live, so nothing sent after this
    /// returns is missed; `None` when there is nothing to read.
    fn open(&self, cx: &Opening, netns: &[&NetnsSpec]) -> Result<Option<Box<dyn TraceReader>>>;
}

/// What a source's reader is opened with.
pub struct Opening<'a> {
    /// The lab the run built.
    pub lab: &'a Lab,
    /// The scenario it built it from.
    pub scenario: &'a Scenario,
    /// Where readers report the probe packets they see dropped while the run goes on.
    pub drops: &'a Drops,
    /// Per traced netns whose iptables rules steps wrote, the source that reads them (netpath
    /// put its TRACE rules there after the steps).
    pub step_sources: &'a BTreeMap<String, TraceChoice>,
}

/// What a reader is stopped with: the lab and what the captures saw.
pub struct Stopping<'a> {
    /// The lab the run built.
    pub lab: &'a Lab,
    /// Per netns, its interfaces' names by index.
    pub ifnames: &'a BTreeMap<String, BTreeMap<u32, String>>,
    /// Every captured frame.
    pub frames: &'a [Frame],
    /// The probes' nonces, by what the captures saw of them.
    pub nonces: &'a Nonces,
}

/// Where stopped readers put what they read.
#[derive(Default)]
pub struct Collected {
    /// Per traced netns, its events.
    pub events: BTreeMap<String, Vec<TimedEvent>>,
    /// What a reader failed at or lost (a loss's message starts with
    /// [`crate::observe::reader::LOST`]).
    pub errors: Vec<Error>,
    /// Raw records kept as artifacts.
    pub pcaps: Pcaps,
}

/// A source's running reader.
pub trait TraceReader {
    /// Ask it to stop once it has drained what is queued (signalling every reader first lets
    /// their closes overlap).
    fn signal(&self) {}
    /// Stop after draining what the kernel queued and put its events, losses and failures in
    /// `out`; an `Err` fails the whole stop at once.
    fn stop(self: Box<Self>, cx: &Stopping, out: &mut Collected) -> Result<()>;
}

/// The source that reports a traced netns whose iptables rules are `rules`' (the backend a
/// step's tools wrote to) in a run under `backend` that reads `trace`: the run's own where it
/// sees them, else the one that does. `Err` says why when the run's source reads every netns by
/// itself (the kernel log) and cannot see them: the netns would have no trace at all.
pub fn source_for(trace: TraceChoice, backend: Backend, rules: Backend) -> std::result::Result<TraceChoice, String> {
    let global = trace.source().global();
    if rules == backend || (global && trace.check_backend(rules).is_ok()) {
        return Ok(trace);
    }
    let own = TraceChoice::for_backend(rules);
    match trace.check_backend(rules) {
        Err(why) if global => Err(format!(
            "{why}; a {name} run reads no other source (without --trace {name}, netpath traces this netns with {})",
            own.name(),
            name = trace.name()
        )),
        _ => Ok(own),
    }
}

/// Whether `trace` can report every traced netns of `sc` under `backend`, as far as the file
/// says before anything is built: its iptables rulesets, native nft rulesets, and the backend a
/// `traced_backend` pins for rules steps write. What only the steps reveal is checked after them
/// ([`crate::scenario::handle::after_steps`]).
pub fn check_run(sc: &Scenario, backend: Backend, trace: TraceChoice) -> Result<()> {
    for n in sc.netns.iter().filter(|n| n.trace) {
        let fail = |message: String| Error::Trace { netns: n.name.clone(), message };
        if n.iptables_rulesets().next().is_some() {
            trace.check_backend(backend).map_err(fail)?;
        }
        if n.nft.is_some() && trace != TraceChoice::Nftrace {
            return Err(fail(format!(
                "a native nft ruleset reports only through nf_tables trace events (trace source nftrace), not {}",
                trace.name()
            )));
        }
        if let Some(pin) = n.traced_backend.filter(|_| !sc.step.is_empty()) {
            source_for(trace, backend, pin)
                .map_err(|why| fail(format!("traced_backend = \"{}\": {why}", pin.name())))?;
        }
    }
    Ok(())
}

impl TraceChoice {
    /// The source that sees a backend's hooks.
    pub fn for_backend(backend: Backend) -> TraceChoice {
        match backend {
            Backend::Legacy => TraceChoice::Nflog,
            Backend::Nft => TraceChoice::Nftrace,
        }
    }

    /// The source this names.
    pub fn source(self) -> &'static dyn TraceSource {
        SOURCES.into_iter().find(|s| s.choice() == self).expect("every TraceChoice is in SOURCES")
    }

    /// See [`TraceSource::check_backend`].
    pub fn check_backend(self, backend: Backend) -> std::result::Result<(), String> {
        self.source().check_backend(backend)
    }

    /// The name a scenario or command line gives it.
    pub fn name(self) -> &'static str {
        self.source().name()
    }
}

impl std::str::FromStr for TraceChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        SOURCES.into_iter().find(|c| c.name() == s).map(|c| c.choice()).ok_or_else(|| {
            let names: Vec<&str> = SOURCES.iter().map(|c| c.name()).collect();
            let (last, rest) = names.split_last().unwrap_or((&"", &[]));
            format!("unknown trace source `{s}` (want {} or {last})", rest.join(", "))
        })
    }
}

/// How events name their origin in serialized evidence: a source, or `Text` for events read
/// from text (the seed articles, a saved log), as before the two enums were one.
pub mod origin {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{SOURCES, TraceChoice};

    pub fn serialize<S: Serializer>(v: &Option<TraceChoice>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.map_or("Text", |c| c.source().origin()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TraceChoice>, D::Error> {
        match String::deserialize(d)?.as_str() {
            "Text" => Ok(None),
            other => SOURCES
                .into_iter()
                .find(|s| s.origin() == other)
                .map(|s| Some(s.choice()))
                .ok_or_else(|| serde::de::Error::custom(format!("unknown event source `{other}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_is_registered_once_and_named_back() {
        for choice in [TraceChoice::Nflog, TraceChoice::Nftrace, TraceChoice::Kmsg] {
            assert_eq!(choice.source().choice(), choice);
            assert_eq!(choice.name().parse::<TraceChoice>(), Ok(choice));
        }
        assert_eq!(
            "pcap".parse::<TraceChoice>().unwrap_err(),
            "unknown trace source `pcap` (want nflog, nftrace or kmsg)"
        );
        // Each backend's default source sees its TRACE; the others say why not.
        for backend in [Backend::Legacy, Backend::Nft] {
            assert_eq!(TraceChoice::for_backend(backend).check_backend(backend), Ok(()));
        }
        assert!(TraceChoice::Kmsg.check_backend(Backend::Nft).unwrap_err().contains("kmsg would miss"));
    }

    #[test]
    fn a_source_blind_to_what_the_file_says_is_refused_before_anything_is_built() {
        let sc = |netns: &str| {
            let text = format!(
                "name = \"x\"\nbackends = [\"{}\"]\n[[netns]]\nname = \"a\"\n{netns}\n[[netns]]\nname = \"b\"\n\
                 [[veth]]\na = {{ netns = \"a\", name = \"eth0\", addresses = [\"10.9.0.1/24\"] }}\n\
                 b = {{ netns = \"b\", name = \"eth0\", addresses = [\"10.9.0.2/24\"] }}\n\
                 [[probe]]\nname = \"p\"\nfrom = \"b\"\nto = \"10.9.0.1\"\n\
                 [[step]]\nname = \"s\"\nnetns = \"a\"\nprogram = \"true\"\n",
                if netns.starts_with("nft") { "nft" } else { "legacy\", \"nft" }
            );
            Scenario::from_toml(&text, std::path::Path::new("x.toml")).unwrap_or_else(|e| panic!("{e}"))
        };
        use TraceChoice::{Kmsg, Nflog, Nftrace};
        let rules = sc("iptables = \"*filter\\nCOMMIT\\n\"");
        assert!(check_run(&rules, Backend::Legacy, Kmsg).is_ok());
        let e = check_run(&rules, Backend::Nft, Kmsg).unwrap_err().to_string();
        assert!(e.starts_with("netns a: trace: the kernel log does not see nf_tables TRACE"), "{e}");
        assert!(check_run(&rules, Backend::Legacy, Nftrace).is_err());
        let native = sc("nft = \"table inet t {}\"");
        assert!(check_run(&native, Backend::Nft, Nftrace).is_ok());
        let e = check_run(&native, Backend::Nft, Kmsg).unwrap_err().to_string();
        assert!(
            e.contains(
                "a native nft ruleset reports only through nf_tables trace events (trace source nftrace), not kmsg"
            ),
            "{e}"
        );
        let pinned = sc("traced_backend = \"nft\"");
        assert!(check_run(&pinned, Backend::Legacy, Nflog).is_ok(), "nflog runs mix in nftrace for it");
        let e = check_run(&pinned, Backend::Legacy, Kmsg).unwrap_err().to_string();
        assert!(
            e.starts_with("netns a: trace: traced_backend = \"nft\": the kernel log does not see nf_tables TRACE"),
            "{e}"
        );
        // Not traced: nothing to see.
        let untraced = sc("traced_backend = \"nft\"\ntrace = false");
        assert!(check_run(&untraced, Backend::Legacy, Kmsg).is_ok());
    }

    #[test]
    fn a_netns_whose_tools_chose_the_other_backend_is_read_by_the_source_that_sees_it() {
        use TraceChoice::{Kmsg, Nflog, Nftrace};
        // Per-netns sources mix: each netns gets the one that sees its rules.
        assert_eq!(source_for(Nflog, Backend::Legacy, Backend::Legacy), Ok(Nflog));
        assert_eq!(source_for(Nflog, Backend::Legacy, Backend::Nft), Ok(Nftrace));
        assert_eq!(source_for(Nftrace, Backend::Nft, Backend::Legacy), Ok(Nflog));
        // The kernel log reads every netns alone: legacy rules it sees, nf_tables rules it never does.
        assert_eq!(source_for(Kmsg, Backend::Legacy, Backend::Legacy), Ok(Kmsg));
        assert_eq!(source_for(Kmsg, Backend::Nft, Backend::Legacy), Ok(Kmsg));
        let why = source_for(Kmsg, Backend::Legacy, Backend::Nft).unwrap_err();
        assert!(why.starts_with("the kernel log does not see nf_tables TRACE"), "{why}");
        assert!(why.ends_with("(without --trace kmsg, netpath traces this netns with nftrace)"), "{why}");
    }

    /// Every variant, listed by an exhaustive match: a new one fails to compile here until it
    /// is listed, and then the test below fails until it has its source in [`SOURCES`].
    fn all_choices() -> Vec<TraceChoice> {
        let all = vec![TraceChoice::Nflog, TraceChoice::Nftrace, TraceChoice::Kmsg];
        for c in &all {
            match c {
                TraceChoice::Nflog | TraceChoice::Nftrace | TraceChoice::Kmsg => {}
            }
        }
        all
    }

    #[test]
    fn every_trace_choice_has_exactly_one_source_and_origin() {
        let all = all_choices();
        assert_eq!(SOURCES.len(), all.len(), "SOURCES has a source per TraceChoice, no more");
        for c in all {
            assert_eq!(SOURCES.iter().filter(|s| s.choice() == c).count(), 1, "{c:?} in SOURCES");
            let origin = c.source().origin();
            assert_eq!(SOURCES.iter().filter(|s| s.origin() == origin).count(), 1, "origin {origin} is unique");
            assert_ne!(origin, "Text");
        }
    }

    #[test]
    fn features_follow_what_the_netns_has() {
        let v6 = Traced { has_bridge: true, has_trace_rules: true, families: vec![Family::V4, Family::V6] };
        assert_eq!(TraceChoice::Nflog.source().features(&v6), [Feature::Nflog, Feature::NflogIpv6]);
        assert_eq!(TraceChoice::Nftrace.source().features(&v6), [Feature::NfTablesTrace, Feature::Nflog]);
        assert_eq!(TraceChoice::Kmsg.source().features(&v6), [Feature::KernelLog, Feature::KernelLogIpv6]);
        assert_eq!(TraceChoice::Kmsg.source().features(&Traced::default()), []);
    }
}
