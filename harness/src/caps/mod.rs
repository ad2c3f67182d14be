//! What this kernel and userspace offer netpath, and why not when they don't: `netpath caps`
//! prints the table, cases call [`require`] (or [`skip`]) to skip with the reason.
//!
//! Behaviour is the truth, the kernel config the explanation. Every feature is probed by doing
//! what netpath would do (make the link, add the rule, bind the logger) in one scratch netns that
//! is removed afterwards, so the init netns is only read, never changed. Only when a probe fails
//! is `/proc/config.gz` consulted, to say which `CONFIG_*` the kernel lacks.

pub mod requires;

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::{LinkBridge, LinkVeth, LinkWireguard};

use crate::lab::netns::{self, Netns};
use crate::observe::trace::nftrace::{self, NfTraceSocket};
use crate::tool;

/// A tool that has not answered by then is stuck (a held xtables lock, a hung daemon); probing
/// must never hang a test run. Not less: the first ebtables-nft in a fresh QEMU guest under
/// software emulation (netpath-vm on 5.10) took over 3 s, and a feature that is there must not
/// look missing.
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an rtnetlink request or the nf_tables query may take (emulated guests included).
const NETLINK_TIMEOUT: Duration = Duration::from_secs(10);

/// Something a scenario may need from the kernel or from userspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// Network namespaces (`CONFIG_NET_NS`).
    Netns,
    /// veth pairs (`CONFIG_VETH`).
    Veth,
    /// Linux bridges (`CONFIG_BRIDGE`).
    Bridge,
    /// `net.bridge.bridge-nf-call-iptables` exists per netns: bridged IPv4 meets iptables.
    BrNetfilter,
    /// ebtables' filter table in a netns.
    EbtablesFilter,
    /// ebtables' nat table in a netns.
    EbtablesNat,
    /// ebtables' broute table in a netns.
    EbtablesBroute,
    /// xt_TRACE through iptables-legacy in a netns.
    LegacyTrace,
    /// nfnetlink_log can be bound as a netns's IPv4 logger (`nf_log/2`), so TRACE arrives as NFLOG.
    Nflog,
    /// nf_tables trace events on `NFNLGRP_NFTRACE` ([`NfTraceSocket`]).
    NfTablesTrace,
    /// TRACE/LOG lines in the kernel log: `/dev/kmsg` readable, `nf_log_all_netns` present.
    KernelLog,
    /// Connection tracking, read back with `conntrack -L` per netns.
    Conntrack,
    /// `iptables -t nat` (MASQUERADE) through iptables-nft or iptables-legacy.
    Nat,
    /// The kernel's WireGuard.
    WireGuard,
    /// wireguard-go or boringtun-cli over /dev/net/tun.
    WireGuardUserspace,
    /// TUN devices (`/dev/net/tun`), for userspace WireGuard.
    Tun,
    /// IPv6 in a netns (`/proc/sys/net/ipv6` there, `disable_ipv6` off).
    Ipv6,
    /// xt_TRACE through ip6tables-legacy in a netns (its raw table).
    Ip6tablesLegacyTrace,
    /// `ip6tables-nft`: the ip6tables syntax compiled to nf_tables' ip6 family.
    Ip6tablesNft,
    /// `ip6tables -t nat` (MASQUERADE) through ip6tables-nft or ip6tables-legacy: NAT66.
    Nat66,
    /// nfnetlink_log can be bound as a netns's IPv6 logger (`nf_log/10`): IPv6 TRACE as NFLOG.
    NflogIpv6,
    /// The syslog logger can be bound as a netns's IPv6 logger (`nf_log/10 = nf_log_ipv6`):
    /// IPv6 TRACE in the kernel log.
    KernelLogIpv6,
    /// The eBPF drop source on `skb:kfree_skb` ([`crate::observe::kfree_skb`]): where the
    /// kernel dropped each probe packet (BTF, raw tracepoints).
    DropLocation,
    /// The drop source with the kernel's drop reason (`enum skb_drop_reason`, Linux 5.17).
    DropReason,
}

impl Feature {
    /// Every feature, in the order `netpath caps` prints them.
    pub const ALL: [Feature; 24] = [
        Feature::Netns,
        Feature::Veth,
        Feature::Bridge,
        Feature::BrNetfilter,
        Feature::EbtablesFilter,
        Feature::EbtablesNat,
        Feature::EbtablesBroute,
        Feature::LegacyTrace,
        Feature::Nflog,
        Feature::NfTablesTrace,
        Feature::KernelLog,
        Feature::Conntrack,
        Feature::Nat,
        Feature::WireGuard,
        Feature::WireGuardUserspace,
        Feature::Tun,
        Feature::Ipv6,
        Feature::Ip6tablesLegacyTrace,
        Feature::Ip6tablesNft,
        Feature::Nat66,
        Feature::NflogIpv6,
        Feature::KernelLogIpv6,
        Feature::DropLocation,
        Feature::DropReason,
    ];

    /// A stable identifier for files and command lines (`ebtables-broute`).
    pub fn key(self) -> &'static str {
        match self {
            Feature::Netns => "netns",
            Feature::Veth => "veth",
            Feature::Bridge => "bridge",
            Feature::BrNetfilter => "br-netfilter",
            Feature::EbtablesFilter => "ebtables-filter",
            Feature::EbtablesNat => "ebtables-nat",
            Feature::EbtablesBroute => "ebtables-broute",
            Feature::LegacyTrace => "legacy-trace",
            Feature::Nflog => "nflog",
            Feature::NfTablesTrace => "nftables-trace",
            Feature::KernelLog => "kernel-log",
            Feature::Conntrack => "conntrack",
            Feature::Nat => "nat",
            Feature::WireGuard => "wireguard",
            Feature::WireGuardUserspace => "wireguard-userspace",
            Feature::Tun => "tun",
            Feature::Ipv6 => "ipv6",
            Feature::Ip6tablesLegacyTrace => "ip6tables-legacy-trace",
            Feature::Ip6tablesNft => "ip6tables-nft",
            Feature::Nat66 => "ipv6-nat",
            Feature::NflogIpv6 => "nflog-ipv6",
            Feature::KernelLogIpv6 => "kernel-log-ipv6",
            Feature::DropLocation => "drop-location",
            Feature::DropReason => "drop-reason",
        }
    }

    /// What a person calls it (`ebtables broute table`).
    pub fn name(self) -> &'static str {
        match self {
            Feature::Netns => "network namespaces",
            Feature::Veth => "veth pairs",
            Feature::Bridge => "Linux bridge",
            Feature::BrNetfilter => "br_netfilter",
            Feature::EbtablesFilter => "ebtables filter table",
            Feature::EbtablesNat => "ebtables nat table",
            Feature::EbtablesBroute => "ebtables broute table",
            Feature::LegacyTrace => "iptables-legacy TRACE",
            Feature::Nflog => "nfnetlink_log (NFLOG)",
            Feature::NfTablesTrace => "nf_tables trace events",
            Feature::KernelLog => "kernel log (/dev/kmsg)",
            Feature::Conntrack => "conntrack",
            Feature::Nat => "iptables nat table",
            Feature::WireGuard => "WireGuard (kernel)",
            Feature::WireGuardUserspace => "WireGuard (userspace)",
            Feature::Tun => "TUN devices",
            Feature::Ipv6 => "IPv6",
            Feature::Ip6tablesLegacyTrace => "ip6tables-legacy TRACE",
            Feature::Ip6tablesNft => "ip6tables-nft",
            Feature::Nat66 => "IPv6 NAT (ip6tables nat table)",
            Feature::NflogIpv6 => "nf_log for IPv6 to NFLOG",
            Feature::KernelLogIpv6 => "nf_log for IPv6 to the kernel log",
            Feature::DropLocation => "kernel drop location (eBPF on skb:kfree_skb)",
            Feature::DropReason => "kernel drop reason (skb_drop_reason)",
        }
    }

    /// Where it comes from: the kernel config symbols and the packages.
    pub fn provided_by(self) -> &'static str {
        match self {
            Feature::Netns => "CONFIG_NET_NS",
            Feature::Veth => "CONFIG_VETH",
            Feature::Bridge => "CONFIG_BRIDGE",
            Feature::BrNetfilter => "CONFIG_BRIDGE_NETFILTER (module br_netfilter)",
            Feature::EbtablesFilter | Feature::EbtablesNat => {
                "CONFIG_NF_TABLES_BRIDGE, with ebtables-nft (Debian package ebtables or iptables)"
            }
            Feature::EbtablesBroute => {
                "CONFIG_BRIDGE_EBT_BROUTE (ebtables-legacy), or nft bridge `meta broute` \
                 (CONFIG_NFT_BRIDGE_META) with an ebtables-nft that emulates the broute table"
            }
            Feature::LegacyTrace => {
                "CONFIG_NETFILTER_XT_TARGET_TRACE and CONFIG_IP_NF_RAW (CONFIG_IP_NF_IPTABLES_LEGACY \
                 on kernels that split it out), with iptables-legacy (package iptables)"
            }
            Feature::Nflog => "CONFIG_NETFILTER_NETLINK_LOG (module nfnetlink_log)",
            Feature::NfTablesTrace => "CONFIG_NF_TABLES",
            Feature::KernelLog => "CONFIG_PRINTK and CONFIG_NETFILTER (nf_log_all_netns is in the init netns only)",
            Feature::Conntrack => "CONFIG_NF_CONNTRACK (conntrack -L: package conntrack)",
            Feature::Nat => "CONFIG_NF_NAT, with iptables-nft or iptables-legacy (package iptables)",
            Feature::WireGuard => "CONFIG_WIREGUARD (mainline since Linux 5.6)",
            Feature::WireGuardUserspace => {
                "CONFIG_TUN, with wireguard-go (Debian package wireguard-go) or boringtun-cli (crates.io)"
            }
            Feature::Tun => "CONFIG_TUN",
            Feature::Ipv6 => "CONFIG_IPV6",
            Feature::Ip6tablesLegacyTrace => {
                "CONFIG_NETFILTER_XT_TARGET_TRACE and CONFIG_IP6_NF_RAW (CONFIG_IP6_NF_IPTABLES_LEGACY \
                 on kernels that split it out), with ip6tables-legacy (package iptables)"
            }
            Feature::Ip6tablesNft => "CONFIG_NF_TABLES_IPV6, with ip6tables-nft (package iptables)",
            Feature::Nat66 => {
                "CONFIG_NF_NAT with CONFIG_IP6_NF_NAT and CONFIG_IP6_NF_TARGET_MASQUERADE (legacy) or \
                 CONFIG_NFT_NAT (nft), with ip6tables-nft or ip6tables-legacy (package iptables)"
            }
            Feature::NflogIpv6 => "CONFIG_NETFILTER_NETLINK_LOG and CONFIG_IPV6 (module nfnetlink_log)",
            Feature::KernelLogIpv6 => "CONFIG_NF_LOG_IPV6 (nf_log_syslog's IPv6 logger)",
            Feature::DropLocation => "CONFIG_BPF_SYSCALL, CONFIG_BPF_EVENTS and CONFIG_DEBUG_INFO_BTF",
            Feature::DropReason => {
                "Linux 5.17 or later (the reason field of skb:kfree_skb), with what drop-location needs"
            }
        }
    }

    /// The kernel config that must be set (`y` or `m`) for the feature: every inner list is
    /// needed, any one symbol of an inner list will do.
    pub fn kernel_config(self) -> &'static [&'static [&'static str]] {
        match self {
            Feature::Netns => &[&["CONFIG_NET_NS"]],
            Feature::Veth => &[&["CONFIG_VETH"]],
            Feature::Bridge => &[&["CONFIG_BRIDGE"]],
            Feature::BrNetfilter => &[&["CONFIG_BRIDGE_NETFILTER"]],
            Feature::EbtablesFilter | Feature::EbtablesNat => &[&["CONFIG_NF_TABLES_BRIDGE"]],
            Feature::EbtablesBroute => &[&["CONFIG_BRIDGE_EBT_BROUTE", "CONFIG_NFT_BRIDGE_META"]],
            Feature::LegacyTrace => &[&["CONFIG_NETFILTER_XT_TARGET_TRACE"], &["CONFIG_IP_NF_RAW"]],
            Feature::Nflog => &[&["CONFIG_NETFILTER_NETLINK_LOG"]],
            Feature::NfTablesTrace => &[&["CONFIG_NF_TABLES"]],
            Feature::KernelLog => &[&["CONFIG_PRINTK"], &["CONFIG_NETFILTER"]],
            Feature::Conntrack => &[&["CONFIG_NF_CONNTRACK"]],
            Feature::Nat => &[&["CONFIG_NF_NAT"]],
            Feature::WireGuard => &[&["CONFIG_WIREGUARD"]],
            Feature::WireGuardUserspace | Feature::Tun => &[&["CONFIG_TUN"]],
            Feature::Ipv6 => &[&["CONFIG_IPV6"]],
            Feature::Ip6tablesLegacyTrace => &[&["CONFIG_NETFILTER_XT_TARGET_TRACE"], &["CONFIG_IP6_NF_RAW"]],
            Feature::Ip6tablesNft => &[&["CONFIG_NF_TABLES_IPV6"]],
            Feature::Nat66 => &[&["CONFIG_NF_NAT"], &["CONFIG_IP6_NF_NAT", "CONFIG_NFT_NAT"]],
            Feature::NflogIpv6 => &[&["CONFIG_NETFILTER_NETLINK_LOG"], &["CONFIG_IPV6"]],
            Feature::KernelLogIpv6 => &[&["CONFIG_NF_LOG_IPV6"]],
            Feature::DropLocation | Feature::DropReason => {
                &[&["CONFIG_BPF_SYSCALL"], &["CONFIG_BPF_EVENTS"], &["CONFIG_DEBUG_INFO_BTF"]]
            }
        }
    }

    /// The programs the probe runs, any one of which will do (none: the kernel alone decides).
    pub fn tools(self) -> &'static [&'static str] {
        match self {
            Feature::EbtablesFilter | Feature::EbtablesNat | Feature::EbtablesBroute => &["ebtables-nft"],
            Feature::LegacyTrace => &["iptables-legacy"],
            Feature::Nat => &["iptables-nft", "iptables-legacy"],
            Feature::Ip6tablesLegacyTrace => &["ip6tables-legacy"],
            Feature::Ip6tablesNft => &["ip6tables-nft"],
            Feature::Nat66 => &["ip6tables-nft", "ip6tables-legacy"],
            Feature::WireGuardUserspace => &["wireguard-go", "boringtun-cli"],
            _ => &[],
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Feature {
    type Err = String;
    fn from_str(s: &str) -> Result<Feature, String> {
        Feature::ALL.into_iter().find(|f| f.key() == s).ok_or_else(|| {
            let keys: Vec<&str> = Feature::ALL.iter().map(|f| f.key()).collect();
            format!("unknown feature `{s}` (known: {})", keys.join(", "))
        })
    }
}

/// The outcome of probing one feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// The feature probed.
    pub feature: Feature,
    /// Whether this kernel and userspace have it.
    pub available: bool,
    /// What was found (a version, a value) or why it is missing.
    pub detail: String,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.feature.name(), if self.available { "yes" } else { "no" }, self.detail)
    }
}

/// Why a case did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The feature the scenario needs and this machine lacks.
    pub feature: Feature,
    /// Why it is missing: what failed and, where known, the kernel config that lacks it.
    pub reason: String,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "skipped: needs {}: {}", self.feature.name(), self.reason)
    }
}

impl std::error::Error for Skip {}

/// Probe every feature, in [`Feature::ALL`] order, in one scratch netns removed before return.
/// Never panics: a probe that fails or panics reports the feature as missing, with the reason.
pub fn probe_all() -> Vec<Capability> {
    let name = format!("{}{}-caps", netns::PREFIX, netns::new_run_id());
    let ns = Netns::create(&name).map_err(|e| e.to_string());
    let scratch = ns.as_ref().ok().map(Scratch::new);
    let caps = Feature::ALL
        .iter()
        .map(|&feature| {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match (&ns, &scratch) {
                (Ok(_), Some(s)) => s.probe(feature),
                (Err(e), _) if feature == Feature::Netns => Err(e.clone()),
                (Err(_), _) if needs_netns(feature) => {
                    Err("not probed: no scratch netns (see network namespaces)".into())
                }
                _ => probe_outside(feature),
            }))
            .unwrap_or_else(|panic| Err(format!("the probe panicked: {}", crate::error::panic_text(&panic))));
            match outcome {
                Ok(detail) => Capability { feature, available: true, detail },
                Err(why) => Capability { feature, available: false, detail: explain(feature, &why, kernel_config()) },
            }
        })
        .collect();
    // The links and rules live in the netns: they go with it, and nothing was made elsewhere.
    drop(scratch);
    drop(ns);
    caps
}

/// One feature, from [`probe_all`] run once per process.
pub fn probe(feature: Feature) -> Capability {
    static CACHE: OnceLock<Vec<Capability>> = OnceLock::new();
    CACHE.get_or_init(probe_all).iter().find(|c| c.feature == feature).cloned().unwrap_or_else(|| Capability {
        feature,
        available: false,
        detail: "not probed".to_string(),
    })
}

/// `Err` with the first missing feature and why.
pub fn require(features: &[Feature]) -> Result<(), Skip> {
    for &feature in features {
        let cap = probe(feature);
        if !cap.available {
            return Err(Skip { feature, reason: cap.detail });
        }
    }
    Ok(())
}

/// `NETPATH_STRICT=1`: a run that must exercise everything (CI on a full kernel) turns skips
/// into failures.
pub fn strict() -> bool {
    std::env::var("NETPATH_STRICT").is_ok_and(|v| v.trim() == "1")
}

/// For the top of a case: `if caps::skip(&[Feature::EbtablesBroute]) { return; }`. Prints the
/// skip and returns true when a feature is missing; under [`strict`] panics with it instead.
pub fn skip(features: &[Feature]) -> bool {
    match require(features) {
        Ok(()) => false,
        Err(skip) if strict() => panic!("{skip} (NETPATH_STRICT=1 makes this a failure)"),
        Err(skip) => {
            eprintln!("{skip}");
            true
        }
    }
}

/// The table `netpath caps` prints: the kernel in a header line, then one row per feature.
pub fn table(caps: &[Capability]) -> String {
    format_table(&kernel_version(), kernel_config().map(|c| c.source.as_str()), caps)
}

/// Config symbols that are `bool` in Kconfig (set `=y`); the others are modules (`=m`) in the
/// fragment, as Debian builds them.
const BOOL_SYMBOLS: [&str; 3] = ["CONFIG_NET_NS", "CONFIG_PRINTK", "CONFIG_NETFILTER"];

/// The kernel config fragment the features need, in the kselftests' `config` file convention
/// (`CONFIG_BRIDGE_NETFILTER=m`, one per line), from [`Feature::kernel_config`]: where any of
/// several symbols will do, the first is set and the others named in a comment.
pub fn kernel_config_fragment() -> String {
    let mut out =
        String::from("# The kernel config netpath's bundled scenarios need (`netpath caps --kernel-config`).\n");
    let mut seen = std::collections::BTreeSet::new();
    for f in Feature::ALL {
        for clause in f.kernel_config() {
            let Some((first, others)) = clause.split_first() else { continue };
            if !seen.insert(*first) {
                continue;
            }
            let value = if BOOL_SYMBOLS.contains(first) { "y" } else { "m" };
            let or = if others.is_empty() { String::new() } else { format!(" (or {})", others.join(", ")) };
            out.push_str(&format!("# {}{or}\n{first}={value}\n", f.name()));
        }
    }
    out
}

fn format_table(kernel: &str, config_source: Option<&str>, caps: &[Capability]) -> String {
    let config = match config_source {
        Some(src) => format!("config from {src}"),
        None => "no kernel config found (/proc/config.gz, /boot/config-*): reasons come from probing alone".into(),
    };
    let mut out = format!("kernel {kernel}; {config}\n");
    let width = caps.iter().map(|c| c.feature.name().len()).chain(["feature".len()]).max().unwrap_or(0);
    out.push_str(&format!("{:width$}  {:3}  {}\n", "feature", "ok", "detail"));
    for c in caps {
        let ok = if c.available { "yes" } else { "no" };
        out.push_str(&format!("{:width$}  {ok:3}  {}\n", c.feature.name(), c.detail));
    }
    let available = caps.iter().filter(|c| c.available).count();
    out.push_str(&format!("{available} of {} available\n", caps.len()));
    out
}

fn kernel_version() -> String {
    match nix::sys::utsname::uname() {
        Ok(u) => format!(
            "{} {} {}",
            u.sysname().to_string_lossy(),
            u.release().to_string_lossy(),
            u.machine().to_string_lossy()
        ),
        Err(e) => format!("unknown (uname: {e})"),
    }
}

fn needs_netns(feature: Feature) -> bool {
    !matches!(feature, Feature::KernelLog | Feature::WireGuardUserspace | Feature::DropLocation | Feature::DropReason)
}

// ---- the kernel config, for explanations ----

struct KernelConfig {
    source: String,
    /// Symbols set to `y`, `m` or a value; `# CONFIG_X is not set` and absent symbols are not here.
    values: HashMap<String, String>,
}

impl KernelConfig {
    fn value(&self, symbol: &str) -> Option<&str> {
        self.values.get(symbol).map(String::as_str)
    }
}

fn kernel_config() -> Option<&'static KernelConfig> {
    static CONFIG: OnceLock<Option<KernelConfig>> = OnceLock::new();
    CONFIG.get_or_init(load_kernel_config).as_ref()
}

fn load_kernel_config() -> Option<KernelConfig> {
    // No gzip crate in the dependencies: zcat is everywhere /proc/config.gz is.
    if Path::new("/proc/config.gz").exists()
        && let Ok(text) = tool(None, "zcat", &["/proc/config.gz"])
    {
        return Some(KernelConfig { source: "/proc/config.gz".into(), values: parse_config(&text) });
    }
    // Distribution kernels (Debian's among them) ship the config in /boot instead.
    let release = nix::sys::utsname::uname().ok()?.release().to_string_lossy().into_owned();
    let path = format!("/boot/config-{release}");
    let text = fs::read_to_string(&path).ok()?;
    Some(KernelConfig { source: path, values: parse_config(&text) })
}

fn parse_config(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| l.split_once('='))
        .filter(|(_, v)| *v != "n")
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// The reason a probe failed, with what the kernel config says about it in front: a probe
/// error alone says what broke, the config says what to change.
fn explain(feature: Feature, why: &str, config: Option<&KernelConfig>) -> String {
    let Some(config) = config else {
        return format!("{why} (needs {})", feature.provided_by());
    };
    let clause_text = |clause: &[&str]| match clause {
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (or {})", rest.join(", or ")),
        [] => String::new(),
    };
    let lacking: Vec<String> = feature
        .kernel_config()
        .iter()
        .filter(|clause| clause.iter().all(|s| config.value(s).is_none()))
        .map(|clause| clause_text(clause))
        .collect();
    if !lacking.is_empty() {
        return format!("kernel lacks {}: {why}", lacking.join(" and "));
    }
    let set: Vec<String> = feature
        .kernel_config()
        .iter()
        .flat_map(|clause| clause.iter().filter_map(|s| config.value(s).map(|v| format!("{s}={v}"))))
        .collect();
    let module = if set.iter().any(|s| s.ends_with("=m")) { ", a module: is it loaded?" } else { "" };
    format!("{why}; the kernel has {}{module}", set.join(", "))
}

// ---- probes ----

/// The scratch netns and an rtnetlink socket inside it.
struct Scratch<'a> {
    ns: &'a Netns,
    rtnl: Result<Rtnl, String>,
}

struct Rtnl {
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
}

impl<'a> Scratch<'a> {
    fn new(ns: &'a Netns) -> Scratch<'a> {
        Scratch { ns, rtnl: Rtnl::open(ns) }
    }

    fn probe(&self, feature: Feature) -> Result<String, String> {
        let ns = self.ns;
        match feature {
            Feature::Netns => Ok(format!("made {} (unshare + bind mount)", ns.name())),
            Feature::Veth => self
                .add_link("ip link add npc-v0 type veth peer name npc-v1", LinkVeth::new("npc-v0", "npc-v1").build())
                .map(|()| "made a veth pair over rtnetlink".into()),
            Feature::Bridge => self
                .add_link("ip link add npc-br0 type bridge", LinkBridge::new("npc-br0").build())
                .map(|()| "made a bridge over rtnetlink".into()),
            Feature::BrNetfilter => read_in(ns, "net.bridge.bridge-nf-call-iptables")
                .map(|v| format!("net.bridge.bridge-nf-call-iptables={v} in a new netns")),
            Feature::EbtablesFilter => ebtables(ns, "filter", "FORWARD", "CONTINUE"),
            Feature::EbtablesNat => ebtables(ns, "nat", "PREROUTING", "CONTINUE"),
            // DROP in broute means "route this frame": the one verdict that needs broute support.
            Feature::EbtablesBroute => ebtables(ns, "broute", "BROUTING", "DROP"),
            Feature::LegacyTrace => {
                let args = ["-w", "2", "-t", "raw", "-A", "OUTPUT", "-p", "icmp", "-j", "TRACE"];
                tool(Some(ns), "iptables-legacy", &args)?;
                Ok(format!("{}: raw OUTPUT -j TRACE accepted", version(ns, "iptables-legacy")))
            }
            Feature::Nflog => nf_log(ns, "net.netfilter.nf_log.2", "nfnetlink_log")
                .map(|()| "net.netfilter.nf_log.2=nfnetlink_log accepted: legacy TRACE can go to NFLOG group 0".into()),
            Feature::NflogIpv6 => nf_log(ns, "net.netfilter.nf_log.10", "nfnetlink_log").map(|()| {
                "net.netfilter.nf_log.10=nfnetlink_log accepted: legacy IPv6 TRACE can go to NFLOG group 0".into()
            }),
            Feature::KernelLogIpv6 => nf_log(ns, "net.netfilter.nf_log.10", "nf_log_ipv6").map(|()| {
                "net.netfilter.nf_log.10=nf_log_ipv6 accepted: legacy IPv6 TRACE can go to the kernel log".into()
            }),
            Feature::Ipv6 => match read_in(ns, "net.ipv6.conf.all.disable_ipv6") {
                Ok(v) if v.trim() == "0" => Ok("net.ipv6.conf.all.disable_ipv6=0 in a new netns".into()),
                Ok(v) => Err(format!(
                    "net.ipv6.conf.all.disable_ipv6={} in a new netns (ipv6.disable=1 on the kernel command line?)",
                    v.trim()
                )),
                Err(e) => Err(e),
            },
            Feature::Ip6tablesLegacyTrace => {
                let args = ["-w", "2", "-t", "raw", "-A", "OUTPUT", "-p", "ipv6-icmp", "-j", "TRACE"];
                tool(Some(ns), "ip6tables-legacy", &args)?;
                Ok(format!("{}: raw OUTPUT -j TRACE accepted", version(ns, "ip6tables-legacy")))
            }
            Feature::Ip6tablesNft => {
                tool(Some(ns), "ip6tables-nft", &["-A", "OUTPUT", "-p", "ipv6-icmp", "-j", "ACCEPT"])?;
                Ok(format!("{}: filter OUTPUT rule accepted", version(ns, "ip6tables-nft")))
            }
            Feature::Nat66 => nat(ns, "ip6tables"),
            Feature::NfTablesTrace => ns
                .run(|| {
                    NfTraceSocket::open().map_err(|e| netns_io(ns, "join NFNLGRP_NFTRACE", e))?;
                    nf_tables_generation()
                        .map_err(|e| netns_io(ns, "ask nf_tables for its generation (NFT_MSG_GETGEN)", e))
                })
                .map(|generation| format!("joined NFNLGRP_NFTRACE; nf_tables answers (generation {generation})"))
                .map_err(|e| e.to_string()),
            Feature::Conntrack => conntrack(ns),
            Feature::Nat => nat(ns, "iptables"),
            Feature::WireGuard => self
                .add_link("ip link add npc-wg0 type wireguard", LinkWireguard::new("npc-wg0").build())
                .map(|()| "made a wireguard link over rtnetlink".into()),
            Feature::Tun => ns
                .run(|| make_tun("npc-tun0").map_err(|e| netns_io(ns, "TUNSETIFF on /dev/net/tun", e)))
                .map(|()| "made a TUN device through /dev/net/tun".into())
                .map_err(|e| e.to_string()),
            Feature::KernelLog | Feature::WireGuardUserspace | Feature::DropLocation | Feature::DropReason => {
                probe_outside(feature)
            }
        }
    }

    fn add_link(&self, what: &str, msg: LinkMessage) -> Result<(), String> {
        let rtnl = self.rtnl.as_ref().map_err(|e| e.clone())?;
        let request = rtnl.handle.link().add(msg).execute();
        match rtnl.rt.block_on(async { tokio::time::timeout(NETLINK_TIMEOUT, request).await }) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(rtnetlink::Error::NetlinkError(e))) if e.raw_code() < 0 => {
                Err(format!("`{what}` over rtnetlink: {}", io::Error::from_raw_os_error(-e.raw_code())))
            }
            Ok(Err(e)) => Err(format!("`{what}` over rtnetlink: {e}")),
            Err(_) => Err(format!("`{what}` over rtnetlink: no answer within {NETLINK_TIMEOUT:?}")),
        }
    }
}

impl Rtnl {
    fn open(ns: &Netns) -> Result<Rtnl, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("start a tokio runtime for rtnetlink: {e}"))?;
        // The socket belongs to the netns of the thread that opens it.
        let (conn, handle) = ns
            .run(|| {
                let _guard = rt.enter();
                let (conn, handle, _) =
                    rtnetlink::new_connection().map_err(|e| netns_io(ns, "open an rtnetlink socket", e))?;
                Ok((conn, handle))
            })
            .map_err(|e| e.to_string())?;
        rt.spawn(conn);
        Ok(Rtnl { rt, handle })
    }
}

fn netns_io(ns: &Netns, what: &str, e: io::Error) -> crate::Error {
    crate::Error::netns(ns.name(), what, e)
}

/// Probes that need no netns of their own: they only read.
fn probe_outside(feature: Feature) -> Result<String, String> {
    match feature {
        Feature::KernelLog => kernel_log(),
        Feature::WireGuardUserspace => wireguard_userspace(),
        Feature::DropLocation => crate::observe::kfree_skb::probe_feature(crate::observe::kfree_skb::Flavour::Location),
        Feature::DropReason => crate::observe::kfree_skb::probe_feature(crate::observe::kfree_skb::Flavour::Reason),
        other => Err(format!("{} cannot be probed outside a netns", other.name())),
    }
}

/// A sysctl as the scratch netns sees it; missing means the kernel lacks it or its module is
/// not loaded.
fn read_in(ns: &Netns, key: &str) -> Result<String, String> {
    let path = crate::lab::sysctl::path_of(key);
    ns.run(|| Ok(fs::read_to_string(&path))).map_err(|e| e.to_string())?.map(|v| v.trim().to_string()).map_err(|e| {
        match e.kind() {
            io::ErrorKind::NotFound => format!("no {path} in a new netns"),
            _ => format!("read {path}: {e}"),
        }
    })
}

fn ebtables(ns: &Netns, table: &str, chain: &str, target: &str) -> Result<String, String> {
    tool(Some(ns), "ebtables-nft", &["-t", table, "-A", chain, "-j", target])?;
    Ok(format!("{}: rule added to {table} {chain}", version(ns, "ebtables-nft")))
}

/// The first line of `PROGRAM --version`, or the program's name when it will not say.
fn version(ns: &Netns, program: &str) -> String {
    tool(Some(ns), program, &["--version"])
        .ok()
        .and_then(|out| out.lines().next().map(|l| l.trim().to_string()))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| program.to_string())
}

/// Bind `logger` to the netns's nf_log slot `key`, as trace sources do.
fn nf_log(ns: &Netns, key: &str, logger: &str) -> Result<(), String> {
    let path = crate::lab::sysctl::path_of(key);
    ns.run(|| Ok(fs::write(&path, format!("{logger}\n")))).map_err(|e| e.to_string())?.map_err(|e| {
        match (e.kind(), Path::new(&path).exists()) {
            // The kernel answers ENOENT for a logger name nobody registered.
            (io::ErrorKind::NotFound, true) => {
                format!("write {logger} to {path}: {e} (no logger named {logger} is registered)")
            }
            _ => format!("write {logger} to {path}: {e}"),
        }
    })
}

fn conntrack(ns: &Netns) -> Result<String, String> {
    match read_in(ns, "net.netfilter.nf_conntrack_max") {
        Ok(max) => Ok(format!("net.netfilter.nf_conntrack_max={max} in a new netns")),
        // conntrack -L loads nf_conntrack_netlink, and with it nf_conntrack, where modules load.
        Err(no_sysctl) => match tool(Some(ns), "conntrack", &["-L"]) {
            Ok(_) => Ok(format!("`conntrack -L` works ({no_sysctl})")),
            Err(e) => Err(format!("{no_sysctl}; {e}")),
        },
    }
}

/// MASQUERADE through `{prefix}-nft` and `{prefix}-legacy` (`iptables` or `ip6tables`).
fn nat(ns: &Netns, prefix: &str) -> Result<String, String> {
    let (nft, legacy) = (format!("{prefix}-nft"), format!("{prefix}-legacy"));
    let masquerade = |program: &str| {
        let mut args = vec!["-t", "nat", "-A", "POSTROUTING", "-o", "npc-none", "-j", "MASQUERADE"];
        if program == legacy {
            // The legacy lock is global across namespaces: wait for it rather than fail.
            args.splice(0..0, ["-w", "2"]);
        }
        tool(Some(ns), program, &args).map(drop)
    };
    match (masquerade(&nft), masquerade(&legacy)) {
        (Ok(()), Ok(())) => Ok(format!("MASQUERADE accepted by {nft} and {legacy}")),
        (Ok(()), Err(e)) => Ok(format!("MASQUERADE accepted by {nft}; not by {legacy}: {e}")),
        (Err(e), Ok(())) => Ok(format!("MASQUERADE accepted by {legacy}; not by {nft}: {e}")),
        (Err(nft), Err(legacy)) => Err(format!("{nft}; {legacy}")),
    }
}

fn kernel_log() -> Result<String, String> {
    OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg").map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => format!("open /dev/kmsg for reading: {e} (run as root)"),
        _ => format!("open /dev/kmsg for reading: {e}"),
    })?;
    // Only the init netns has this sysctl: read from here, which is the init netns unless the
    // whole process runs in another one (a container), where the host's log is out of reach anyway.
    let key = "net.netfilter.nf_log_all_netns";
    let path = crate::lab::sysctl::path_of(key);
    let all = fs::read_to_string(&path)
        .map(|v| v.trim().to_string())
        .map_err(|e| format!("read {path}: {e} (it exists only in the init netns)"))?;
    let mut detail = format!("/dev/kmsg readable; {key}={all}");
    if all == "0" {
        detail.push_str(" (TRACE/LOG of other netns reach the log only once it is 1; global)");
    }
    // The IPv4 syslog logger is what turns TRACE into log lines.
    let loggers = fs::read_to_string("/proc/net/netfilter/nf_log").unwrap_or_default();
    let ipv4 = loggers.lines().find(|l| l.split_whitespace().next() == Some("2")).unwrap_or_default();
    if !ipv4.contains("nf_log_ipv4") {
        detail.push_str("; no IPv4 syslog logger registered (CONFIG_NF_LOG_SYSLOG)");
    }
    Ok(detail)
}

fn wireguard_userspace() -> Result<String, String> {
    let found: Vec<(&str, PathBuf)> =
        ["wireguard-go", "boringtun-cli"].into_iter().filter_map(|p| tool::on_path(p).map(|path| (p, path))).collect();
    if found.is_empty() {
        return Err(
            "neither wireguard-go nor boringtun-cli is on PATH (apt-get install wireguard-go, or cargo install \
             boringtun-cli)"
                .into(),
        );
    }
    OpenOptions::new().read(true).write(true).open("/dev/net/tun").map_err(|e| format!("open /dev/net/tun: {e}"))?;
    let names: Vec<String> = found
        .iter()
        .map(|(program, path)| {
            let version = tool(None, program, &["--version"])
                .ok()
                .and_then(|out| out.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string))
                .unwrap_or_else(|| program.to_string());
            format!("{version} ({})", path.display())
        })
        .collect();
    Ok(format!("{}; /dev/net/tun opens", names.join(", ")))
}

/// Make a TUN device in the calling thread's netns; it goes away when the fd closes.
fn make_tun(name: &str) -> io::Result<()> {
    let tun = OpenOptions::new().read(true).write(true).open("/dev/net/tun")?;
    // struct ifreq: the name, then the flags as a short (the union's first member).
    let mut ifreq = [0u8; 40];
    ifreq[..name.len()].copy_from_slice(name.as_bytes());
    let flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    ifreq[16..18].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which `ifreq` is large enough to hold.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, ifreq.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ask nf_tables for its ruleset generation: joining the trace group succeeds even without
/// nf_tables (the kernel only tries to load it), this answer does not.
fn nf_tables_generation() -> io::Result<u32> {
    const NFT_MSG_NEWGEN: u16 = 15;
    const NFT_MSG_GETGEN: u16 = 16;
    const NFTA_GEN_ID: u16 = 1;
    // SAFETY: plain syscall; the fd is owned right after.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_NETFILTER) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let timeout = libc::timeval { tv_sec: NETLINK_TIMEOUT.as_secs() as libc::time_t, tv_usec: 0 };
    // SAFETY: `timeout` lives for the call and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // nlmsghdr (len, type, flags, seq, pid) + nfgenmsg (family AF_UNSPEC, version 0, res_id 0).
    let mut req = Vec::with_capacity(20);
    req.extend_from_slice(&20u32.to_ne_bytes());
    req.extend_from_slice(&((nftrace::NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN).to_ne_bytes());
    req.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&[0, 0, 0, 0]);
    // SAFETY: the buffer is valid for its length; the kernel is the default destination.
    if unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 8192];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    for msg in nftrace::split_messages(&buf[..n as usize]) {
        let kind = u16::from_ne_bytes([msg[4], msg[5]]);
        if kind == libc::NLMSG_ERROR as u16 && msg.len() >= 20 {
            let code = i32::from_ne_bytes([msg[16], msg[17], msg[18], msg[19]]);
            if code < 0 {
                return Err(io::Error::from_raw_os_error(-code));
            }
        } else if kind == (nftrace::NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN {
            let mut attrs = msg.get(20..).unwrap_or_default();
            while attrs.len() >= 4 {
                let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
                let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
                if len < 4 || len > attrs.len() {
                    break;
                }
                if kind == NFTA_GEN_ID && len >= 8 {
                    return Ok(u32::from_be_bytes([attrs[4], attrs[5], attrs[6], attrs[7]]));
                }
                attrs = attrs.get((len + 3) & !3..).unwrap_or_default();
            }
        }
    }
    Err(io::Error::other("nf_tables sent no generation id"))
}

// ---- running tools ----

/// Run PROGRAM (inside `ns` when given) and return its stdout; an error names the command line
/// and carries the tool's stderr.
fn tool(ns: Option<&Netns>, program: &str, args: &[&str]) -> Result<String, String> {
    let line = tool::command_line(program, args);
    let mut cmd = match ns {
        Some(ns) => ns.command(program),
        None => Command::new(program),
    };
    // The reasons quoted in the table should read the same on every machine.
    cmd.args(args).env("LC_ALL", "C");
    let out = tool::run(cmd, None, TOOL_TIMEOUT).map_err(|e| match e {
        tool::Failure::Spawn(e) if e.kind() == io::ErrorKind::NotFound => {
            format!("cannot run `{program}`{}", tool::install_hint(program))
        }
        tool::Failure::Spawn(e) => format!("cannot run `{line}`: {e}"),
        tool::Failure::Wait(e) => format!("`{line}`: {e}"),
        tool::Failure::TimedOut { after, .. } => format!("`{line}` did not finish within {after:?} and was killed"),
    })?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let said = if out.stderr.trim().is_empty() { &out.stdout } else { &out.stderr };
    let said = said.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    Err(format!("`{line}` failed ({}): {said}", out.status))
}

/// The capabilities netpath needs that this process lacks: building namespaces and links needs
/// them, and without them every kernel feature would look missing and every scenario skip.
pub fn missing_capabilities() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    [(12, "CAP_NET_ADMIN"), (13, "CAP_NET_RAW"), (21, "CAP_SYS_ADMIN")]
        .into_iter()
        .filter(|(bit, _)| eff & (1 << bit) == 0)
        .map(|(_, name)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(feature: Feature, available: bool, detail: &str) -> Capability {
        Capability { feature, available, detail: detail.to_string() }
    }

    #[test]
    fn caps_table_has_kernel_header_and_aligned_rows() {
        let caps = [
            cap(Feature::Netns, true, "made netpath-1x2-caps"),
            cap(Feature::EbtablesBroute, false, "kernel lacks CONFIG_BRIDGE_EBT_BROUTE: ..."),
        ];
        let text = format_table("Linux 6.18.44 x86_64", Some("/proc/config.gz"), &caps);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "kernel Linux 6.18.44 x86_64; config from /proc/config.gz");
        assert_eq!(lines.len(), 5, "{text}");
        let width = "ebtables broute table".len();
        assert_eq!(lines[1], format!("{:width$}  ok   detail", "feature"));
        assert_eq!(lines[2], format!("{:width$}  yes  made netpath-1x2-caps", "network namespaces"));
        assert_eq!(lines[3], "ebtables broute table  no   kernel lacks CONFIG_BRIDGE_EBT_BROUTE: ...");
        assert_eq!(lines[4], "1 of 2 available");
    }

    #[test]
    fn the_config_fragment_names_every_features_symbols_once() {
        let text = kernel_config_fragment();
        let set: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(set.contains(&"CONFIG_BRIDGE_NETFILTER=m") && set.contains(&"CONFIG_NET_NS=y"), "{text}");
        assert!(
            text.contains("# ebtables broute table (or CONFIG_NFT_BRIDGE_META)\nCONFIG_BRIDGE_EBT_BROUTE=m"),
            "{text}"
        );
        assert_eq!(set.iter().filter(|l| l.starts_with("CONFIG_TUN=")).count(), 1, "{text}");
        for f in Feature::ALL {
            for clause in f.kernel_config() {
                assert!(clause.iter().any(|s| set.iter().any(|l| l.starts_with(&format!("{s}=")))), "{f:?}: {text}");
            }
        }
    }

    #[test]
    fn caps_table_says_when_there_is_no_config() {
        let text = format_table("Linux 5.10.0 x86_64", None, &[cap(Feature::Tun, true, "ok")]);
        assert!(text.starts_with("kernel Linux 5.10.0 x86_64; no kernel config found"), "{text}");
    }

    #[test]
    fn caps_real_table_names_this_kernel() {
        let release = nix::sys::utsname::uname().unwrap().release().to_string_lossy().into_owned();
        let text = table(&[cap(Feature::Netns, true, "x")]);
        assert!(text.lines().next().unwrap().contains(&release), "{text}");
    }

    #[test]
    fn caps_skip_display() {
        let skip = Skip {
            feature: Feature::EbtablesBroute,
            reason: "kernel lacks CONFIG_BRIDGE_EBT_BROUTE (or CONFIG_NFT_BRIDGE_META): `ebtables-nft -t broute \
                     -A BROUTING -j DROP` failed (exit status: 3): table 'broute' does not exist"
                .into(),
        };
        assert_eq!(
            skip.to_string(),
            "skipped: needs ebtables broute table: kernel lacks CONFIG_BRIDGE_EBT_BROUTE (or \
             CONFIG_NFT_BRIDGE_META): `ebtables-nft -t broute -A BROUTING -j DROP` failed (exit status: 3): table \
             'broute' does not exist"
        );
    }

    #[test]
    fn caps_feature_keys_round_trip() {
        for f in Feature::ALL {
            assert_eq!(f.key().parse::<Feature>(), Ok(f));
        }
        assert!("ebtables-route".parse::<Feature>().unwrap_err().contains("ebtables-broute"));
    }

    fn config(text: &str) -> KernelConfig {
        KernelConfig { source: "test".into(), values: parse_config(text) }
    }

    #[test]
    fn caps_explain_names_what_the_config_lacks() {
        let cfg = config("CONFIG_BRIDGE=y\n# CONFIG_WIREGUARD is not set\nCONFIG_BRIDGE_NETFILTER=m\n");
        assert_eq!(
            explain(Feature::WireGuard, "`ip link add` failed", Some(&cfg)),
            "kernel lacks CONFIG_WIREGUARD: `ip link add` failed"
        );
        assert_eq!(
            explain(Feature::EbtablesBroute, "no table", Some(&cfg)),
            "kernel lacks CONFIG_BRIDGE_EBT_BROUTE (or CONFIG_NFT_BRIDGE_META): no table"
        );
        assert_eq!(
            explain(Feature::BrNetfilter, "no sysctl", Some(&cfg)),
            "no sysctl; the kernel has CONFIG_BRIDGE_NETFILTER=m, a module: is it loaded?"
        );
        assert_eq!(explain(Feature::Bridge, "EPERM", Some(&cfg)), "EPERM; the kernel has CONFIG_BRIDGE=y");
        assert!(
            explain(Feature::WireGuard, "x", None).ends_with("(needs CONFIG_WIREGUARD (mainline since Linux 5.6))")
        );
    }

    /// What the kernel config promises: absent when a needed symbol is unset; present when
    /// everything needed is built in and the tool is installed. Modules (which may not be
    /// loaded) and ebtables-nft's broute emulation (which depends on its version) promise nothing.
    fn expected(feature: Feature, cfg: &KernelConfig) -> Option<bool> {
        let clauses = feature.kernel_config();
        if clauses.iter().any(|c| c.iter().all(|s| cfg.value(s).is_none())) {
            return Some(false);
        }
        let built_in = clauses.iter().all(|c| c.iter().any(|s| cfg.value(s) == Some("y")));
        let tools = feature.tools().is_empty() || feature.tools().iter().any(|t| tool::on_path(t).is_some());
        (built_in && tools && feature != Feature::EbtablesBroute).then_some(true)
    }

    #[test]
    fn caps_probe_all_agrees_with_the_kernel_config() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: probing needs root");
            return;
        }
        let caps = probe_all();
        eprintln!("{}", table(&caps));
        assert_eq!(caps.iter().map(|c| c.feature).collect::<Vec<_>>(), Feature::ALL);
        assert!(caps.iter().all(|c| !c.detail.is_empty()));
        assert!(caps[0].available, "{}", caps[0]);
        let scratch = caps[0].detail.split_whitespace().nth(1).unwrap_or_default();
        assert!(scratch.starts_with(netns::PREFIX) && scratch.ends_with("-caps"), "{}", caps[0]);
        assert!(!Path::new(netns::NETNS_DIR).join(scratch).exists(), "{scratch} was not removed");
        let Some(cfg) = kernel_config() else {
            eprintln!("no kernel config: only the netns was checked");
            return;
        };
        let mut wrong = vec![];
        for c in &caps {
            if let Some(want) = expected(c.feature, cfg)
                && want != c.available
            {
                wrong.push(format!("expected {}available by {}: {c}", if want { "" } else { "un" }, cfg.source));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
