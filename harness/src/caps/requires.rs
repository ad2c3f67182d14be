//! The kernel and userspace features a scenario needs, derived from the scenario itself, so that
//! scenario files need not declare them and cannot forget one.
//!
//! A run may skip a scenario only when [`crate::caps`] finds one of these missing on this machine;
//! a missing feature that is not derived here makes the run fail with the engine's error instead,
//! which is the safe direction: nothing is skipped that the kernel could have run.
//!
//! What is derived, and from what:
//!
//! | feature | when |
//! |---|---|
//! | network namespaces, veth pairs | always |
//! | Linux bridge | any `[[bridge]]` |
//! | br_netfilter | a netns sets a `net.bridge.*` sysctl (`net.bridge.bridge-nf-call-iptables`) |
//! | ebtables filter and nat tables | a traced netns has a bridge (netpath's trace rules go into both), or the netns's `ebtables` text uses the table |
//! | ebtables broute table | the `ebtables` text uses `broute` (`*broute`, `-t broute`, `BROUTING`) |
//! | the trace source | any traced netns (`trace` is on by default), by the source the run reads, as its [`crate::observe::trace::TraceSource::features`] says: NFLOG (legacy's default: a reader per traced netns), nf_tables trace events (nft's default: a reader per traced netns), the kernel log (`kmsg`, when a traced netns has trace rules) |
//! | NFLOG | also a traced bridge under nftrace: the ebtables trace rules log to NFLOG group 1 |
//! | nf_tables trace events | also any `iptables` ruleset under nft (iptables-nft needs nf_tables) |
//! | iptables-legacy TRACE | backend legacy and a traced netns with an `iptables` ruleset, or a ruleset with its own `-j TRACE` |
//! | conntrack | an `iptables` ruleset with a `*nat` table, `-m conntrack`/`--ctstate`, `-m state`/`--state`, `-m connmark`, `-j CONNMARK`, `-j CT` or `-j NOTRACK`; a probe with `[[probe.conntrack]]` expectations |
//! | iptables nat table | an `iptables` ruleset with a `*nat` table |
//! | IPv6 | an IPv6 address on a veth or bridge, an IPv6 route, or an `ip6tables` ruleset |
//! | ip6tables-legacy TRACE, ip6tables-nft, IPv6 NAT | an `ip6tables` ruleset, as the three iptables rows above say for `iptables` (ip6tables-nft for any ruleset under nft) |
//! | nf_log for IPv6 | a traced netns with an `ip6tables` ruleset under legacy: to NFLOG (nflog) or to the kernel log (kmsg), by the source |
//! | kernel drop location | a `[[probe.drop]]` entry |
//! | kernel drop reason | a `[[probe.drop]]` entry with a `reason` (Linux 5.17) |
//!
//! `[[wireguard]]` interfaces need one of two implementations, the kernel's or wireguard-go:
//! [`check`] skips only when neither is there (which one a run uses is
//! [`crate::lab::wireguard::choose`]'s decision, and a forced one that is missing is an error, not a
//! skip). A feature the topology cannot show would come as an explicit `requires = [...]` list
//! (keys as [`Feature::key`]) that can only add to what is derived here.

use std::collections::BTreeSet;

use crate::caps::{self, Feature, Skip};
use crate::engine::RunOptions;
use crate::firewall::{Backend, Family};
use crate::observe::TraceChoice;
use crate::observe::trace::Traced;
use crate::scenario::Scenario;

/// Every feature `sc` needs under `backend`, read through the backend's own trace source
/// ([`TraceChoice::for_backend`]), in [`Feature::ALL`] order, without duplicates.
pub fn required_features(sc: &Scenario, backend: Backend) -> Vec<Feature> {
    required_features_traced(sc, backend, TraceChoice::for_backend(backend))
}

/// Every feature `sc` needs under `backend` when its trace is read from `trace` (a run's
/// [`RunOptions::trace`]), in [`Feature::ALL`] order, without duplicates.
pub fn required_features_traced(sc: &Scenario, backend: Backend, trace: TraceChoice) -> Vec<Feature> {
    let mut need = BTreeSet::from([Feature::Netns, Feature::Veth]);
    if !sc.bridge.is_empty() {
        need.insert(Feature::Bridge);
    }
    let addresses = sc
        .bridge
        .iter()
        .flat_map(|b| &b.addresses)
        .chain(sc.veth.iter().flat_map(|v| [&v.a, &v.b]).flat_map(|e| &e.addresses));
    if addresses.clone().any(|a| a.addr.is_ipv6()) || sc.route.iter().any(|r| r.is_ipv6()) {
        need.insert(Feature::Ipv6);
    }
    for n in &sc.netns {
        let has_bridge = sc.has_bridge(&n.name);
        if n.sysctls.keys().any(|k| k.replace('/', ".").starts_with("net.bridge.")) {
            need.insert(Feature::BrNetfilter);
        }
        if n.trace {
            // What the source needs to read this netns (its trait says, per source).
            let traced = Traced {
                has_bridge,
                has_trace_rules: sc.has_trace_rules(n),
                families: n.iptables_rulesets().map(|(family, _)| family).collect(),
            };
            need.extend(trace.source().features(&traced));
            if has_bridge {
                need.extend([Feature::EbtablesFilter, Feature::EbtablesNat]);
            }
        }
        if let Some(rules) = &n.ebtables {
            for table in ebtables_tables(rules) {
                match table.as_str() {
                    "filter" => need.insert(Feature::EbtablesFilter),
                    "nat" => need.insert(Feature::EbtablesNat),
                    "broute" => need.insert(Feature::EbtablesBroute),
                    _ => false,
                };
            }
        }
        for (family, rules) in n.iptables_rulesets() {
            let words = rule_words(rules);
            let [trace_feature, nat_feature] = match family {
                Family::V4 => [Feature::LegacyTrace, Feature::Nat],
                Family::V6 => [Feature::Ip6tablesLegacyTrace, Feature::Nat66],
            };
            if family == Family::V6 {
                need.insert(Feature::Ipv6);
            }
            match backend {
                Backend::Legacy => {
                    if n.trace || has_target(&words, &["TRACE"]) {
                        need.insert(trace_feature);
                    }
                }
                Backend::Nft => {
                    need.insert(Feature::NfTablesTrace);
                    if family == Family::V6 {
                        need.insert(Feature::Ip6tablesNft);
                    }
                }
            }
            let nat = tables(rules).iter().any(|t| t == "nat");
            if nat {
                need.extend([nat_feature, Feature::Conntrack]);
            }
            if has_match(&words, &["conntrack", "state", "connmark"])
                || words.iter().any(|w| w == "--ctstate" || w == "--state")
                || has_target(&words, &["CONNMARK", "CT", "NOTRACK"])
            {
                need.insert(Feature::Conntrack);
            }
        }
    }
    // `conntrack -L` reads the entries a probe's conntrack expectations are checked against.
    if sc.probe.iter().any(|p| !p.conntrack.is_empty()) {
        need.insert(Feature::Conntrack);
    }
    // The eBPF drop source sees the drops `[[probe.drop]]` judges; a reason needs 5.17. An entry
    // that does not apply here (`backend`, `kernel = ">=5.17"`) needs nothing: on 5.10 such a
    // file runs everything else instead of skipping whole.
    let kernel = crate::kernel::running();
    let drops = sc.probe.iter().flat_map(|p| &p.drop).filter(|d| {
        d.backend.is_none_or(|b| b == backend) && crate::kernel::KernelRange::applies(d.kernel.as_ref(), kernel)
    });
    if drops.clone().next().is_some() {
        need.insert(Feature::DropLocation);
    }
    if drops.clone().any(|d| d.reason.is_some()) {
        need.insert(Feature::DropReason);
    }
    need.into_iter().collect()
}

/// `Err` with the first feature `sc` needs under `backend`, run with `opts`, that this machine
/// lacks, and why ([`caps::require`] over [`required_features_traced`]).
pub fn check(sc: &Scenario, backend: Backend, opts: &RunOptions) -> Result<(), Skip> {
    let trace = opts.trace.unwrap_or(TraceChoice::for_backend(backend));
    caps::require(&required_features_traced(sc, backend, trace))?;
    // `[[wireguard]]` needs one of two implementations: skip only when neither is there.
    if !sc.wireguard.is_empty()
        && let (Err(kernel), Err(userspace)) =
            (caps::require(&[Feature::WireGuard]), caps::require(&[Feature::WireGuardUserspace]))
    {
        return Err(Skip {
            feature: Feature::WireGuardUserspace,
            reason: format!("{}; and {}", kernel.reason, userspace.reason),
        });
    }
    Ok(())
}

/// The lines of a ruleset that say something (no blank lines, no comments).
fn lines(rules: &str) -> impl Iterator<Item = &str> {
    rules.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The tables of an `*-save` text: its `*table` headers, and `-t TABLE` in rule lines.
fn tables(rules: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for line in lines(rules) {
        if let Some(t) = line.strip_prefix('*') {
            out.push(t.trim().to_string());
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(2) {
            if w[0] == "-t" || w[0] == "--table" {
                out.push(w[1].to_string());
            }
        }
    }
    out
}

/// The ebtables tables a text uses: like [`tables`], with rules outside any `*table` header in
/// filter (ebtables's default) and any mention of `broute`/`BROUTING` counted as the broute table.
fn ebtables_tables(rules: &str) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = tables(rules).into_iter().collect();
    let mut header = false;
    for line in lines(rules) {
        if line.starts_with('*') {
            header = true;
        } else if !header && line.starts_with('-') && !line.contains("-t ") && !line.contains("--table") {
            out.insert("filter".into());
        }
        let lower = line.to_ascii_lowercase();
        if lower.contains("broute") || lower.contains("brouting") {
            out.insert("broute".into());
        }
    }
    out
}

/// The words of the rule lines.
fn rule_words(rules: &str) -> Vec<String> {
    lines(rules).filter(|l| !l.starts_with('*')).flat_map(str::split_whitespace).map(str::to_string).collect()
}

/// Whether a rule uses `-m NAME` (or `--match NAME`) for one of `names`.
fn has_match(words: &[String], names: &[&str]) -> bool {
    words.windows(2).any(|w| (w[0] == "-m" || w[0] == "--match") && names.contains(&w[1].as_str()))
}

/// Whether a rule jumps to (`-j`, `--jump`) one of `targets`.
fn has_target(words: &[String], targets: &[&str]) -> bool {
    words.windows(2).any(|w| (w[0] == "-j" || w[0] == "--jump") && targets.contains(&w[1].as_str()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use Feature::*;

    fn scenario(toml: &str) -> Scenario {
        Scenario::from_toml(toml, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Netns `host` (with `host` as the rest of its table) joined by a veth to an untraced netns
    /// `peer`, then `extra` (more tables), and a ping from peer to host unless `extra` has a probe
    /// (a scenario without one does not load).
    fn with_host(host: &str, extra: &str) -> Scenario {
        let ping = if extra.contains("[[probe]]") {
            ""
        } else {
            "\n[[probe]]\nname = \"ping\"\nfrom = \"peer\"\nto = \"10.0.0.1\"\n"
        };
        scenario(&format!(
            "name = \"t\"\n\n[[netns]]\nname = \"host\"\n{host}\n\n[[netns]]\nname = \"peer\"\ntrace = false\n\n\
             [[veth]]\na = {{ netns = \"host\", name = \"eth0\", addresses = [\"10.0.0.1/24\"] }}\n\
             b = {{ netns = \"peer\", name = \"eth0\", addresses = [\"10.0.0.2/24\"] }}\n{extra}{ping}"
        ))
    }

    const BRIDGE: &str = "\n[[bridge]]\nnetns = \"host\"\nname = \"br0\"\n";

    #[test]
    fn requires_a_traced_netns_needs_the_backends_trace_source() {
        let sc = with_host("", "");
        assert_eq!(required_features(&sc, Backend::Legacy), vec![Netns, Veth, Nflog]);
        assert_eq!(required_features(&sc, Backend::Nft), vec![Netns, Veth, NfTablesTrace]);
    }

    /// A `[[probe.drop]]` needs the drop source, with a reason the reason too, but only where the
    /// entry applies: 5.10 runs a file whose reason entries say `kernel = ">=5.17"`.
    #[test]
    fn requires_the_drop_features_of_the_entries_that_apply() {
        let probe = |drop: &str| {
            format!(
                "[[probe]]\nname = \"p\"\nfrom = \"peer\"\nto = \"10.0.0.1\"\nanswer = \"none\"\n\n\
                 [[probe.drop]]\nnetns = \"host\"\n{drop}\n"
            )
        };
        let need = |drop: &str, b| required_features(&with_host("trace = false", &probe(drop)), b);
        assert_eq!(need("function = \"ip_error\"", Backend::Legacy), vec![Netns, Veth, DropLocation]);
        assert_eq!(need("reason = \"IP_INADDRERRORS\"", Backend::Nft), vec![Netns, Veth, DropLocation, DropReason]);
        assert_eq!(need("reason = \"IP_INADDRERRORS\"\nbackend = \"nft\"", Backend::Legacy), vec![Netns, Veth]);
        // The running kernel is the test's: a range that holds nowhere, and one that holds here.
        assert_eq!(need("reason = \"IP_INADDRERRORS\"\nkernel = \"<1.0\"", Backend::Legacy), vec![Netns, Veth]);
        let here = crate::kernel::running().is_some_and(|v| v >= "5.17".parse().unwrap());
        if here {
            let need = need("reason = \"IP_INADDRERRORS\"\nkernel = \">=5.17\"", Backend::Legacy);
            assert_eq!(need, vec![Netns, Veth, DropLocation, DropReason]);
        }
    }

    #[test]
    fn requires_only_netns_and_veth_when_nothing_is_traced() {
        let sc = with_host("trace = false", "");
        assert_eq!(required_features(&sc, Backend::Legacy), vec![Netns, Veth]);
        assert_eq!(required_features(&sc, Backend::Nft), vec![Netns, Veth]);
    }

    #[test]
    fn requires_a_traced_bridge_needs_ebtables() {
        let sc = with_host("", BRIDGE);
        assert_eq!(
            required_features(&sc, Backend::Legacy),
            vec![Netns, Veth, Bridge, EbtablesFilter, EbtablesNat, Nflog]
        );
        // Under nftrace the ebtables trace rules still log to NFLOG.
        assert_eq!(
            required_features(&sc, Backend::Nft),
            vec![Netns, Veth, Bridge, EbtablesFilter, EbtablesNat, Nflog, NfTablesTrace]
        );
    }

    #[test]
    fn requires_the_kernel_log_when_a_run_traces_through_it() {
        let rules = with_host("iptables = \"*filter\\n:FORWARD DROP [0:0]\\nCOMMIT\\n\"", "");
        assert_eq!(
            required_features_traced(&rules, Backend::Legacy, TraceChoice::Kmsg),
            vec![Netns, Veth, LegacyTrace, KernelLog]
        );
        let bridge = with_host("", BRIDGE);
        assert_eq!(
            required_features_traced(&bridge, Backend::Legacy, TraceChoice::Kmsg),
            vec![Netns, Veth, Bridge, EbtablesFilter, EbtablesNat, KernelLog]
        );
        // A traced netns without rules has nothing to log.
        let bare = with_host("", "");
        assert_eq!(required_features_traced(&bare, Backend::Legacy, TraceChoice::Kmsg), vec![Netns, Veth]);
        assert_eq!(
            required_features_traced(&bare, Backend::Legacy, TraceChoice::for_backend(Backend::Legacy)),
            required_features(&bare, Backend::Legacy)
        );
    }

    #[test]
    fn requires_an_untraced_bridge_needs_only_the_bridge() {
        let sc = with_host("trace = false", BRIDGE);
        assert_eq!(required_features(&sc, Backend::Legacy), vec![Netns, Veth, Bridge]);
        assert_eq!(required_features(&sc, Backend::Nft), vec![Netns, Veth, Bridge]);
    }

    #[test]
    fn requires_br_netfilter_from_a_bridge_sysctl() {
        let sc = with_host(
            "sysctls = { \"net.ipv4.ip_forward\" = \"1\", \"net.bridge.bridge-nf-call-iptables\" = \"1\" }\n\
             trace = false",
            BRIDGE,
        );
        assert_eq!(required_features(&sc, Backend::Legacy), vec![Netns, Veth, Bridge, BrNetfilter]);
        let plain = with_host("sysctls = { \"net.ipv4.ip_forward\" = \"1\" }\ntrace = false", BRIDGE);
        assert_eq!(required_features(&plain, Backend::Legacy), vec![Netns, Veth, Bridge]);
    }

    #[test]
    fn requires_ipv6_features_from_addresses_and_ip6tables_rulesets() {
        let v6 = "\n[[bridge]]\nnetns = \"host\"\nname = \"br0\"\naddresses = [\"fd00::1/64\"]\n";
        assert!(required_features(&with_host("trace = false", v6), Backend::Legacy).contains(&Ipv6));
        assert!(!required_features(&with_host("trace = false", BRIDGE), Backend::Legacy).contains(&Ipv6));
        let nat66 = with_host(
            "ip6tables = \"*nat\\n:POSTROUTING ACCEPT [0:0]\\n-A POSTROUTING -j MASQUERADE\\nCOMMIT\\n\"",
            "",
        );
        assert_eq!(
            required_features(&nat66, Backend::Legacy),
            vec![Netns, Veth, Nflog, Conntrack, Ipv6, Ip6tablesLegacyTrace, Nat66, NflogIpv6]
        );
        assert_eq!(
            required_features(&nat66, Backend::Nft),
            vec![Netns, Veth, NfTablesTrace, Conntrack, Ipv6, Ip6tablesNft, Nat66]
        );
        let kmsg = required_features_traced(&nat66, Backend::Legacy, TraceChoice::Kmsg);
        assert!(kmsg.contains(&KernelLogIpv6) && !kmsg.contains(&NflogIpv6), "{kmsg:?}");
        // An IPv4 ruleset needs none of them.
        let v4 = with_host("iptables = \"*nat\\n:POSTROUTING ACCEPT [0:0]\\nCOMMIT\\n\"", "");
        assert_eq!(required_features(&v4, Backend::Legacy), vec![Netns, Veth, LegacyTrace, Nflog, Conntrack, Nat]);
    }

    #[test]
    fn requires_iptables_trace_per_backend() {
        let sc = with_host("iptables = \"*filter\\n:FORWARD DROP [0:0]\\nCOMMIT\\n\"", "");
        assert_eq!(required_features(&sc, Backend::Legacy), vec![Netns, Veth, LegacyTrace, Nflog]);
        assert_eq!(required_features(&sc, Backend::Nft), vec![Netns, Veth, NfTablesTrace]);
    }

    #[test]
    fn requires_an_untraced_ruleset_needs_trace_only_for_its_own_trace_rule() {
        let quiet = with_host("trace = false\niptables = \"*filter\\n:INPUT ACCEPT [0:0]\\nCOMMIT\\n\"", "");
        assert_eq!(required_features(&quiet, Backend::Legacy), vec![Netns, Veth]);
        // iptables-nft itself needs nf_tables.
        assert_eq!(required_features(&quiet, Backend::Nft), vec![Netns, Veth, NfTablesTrace]);
        let own = with_host(
            "trace = false\niptables = \"*raw\\n:PREROUTING ACCEPT [0:0]\\n-A PREROUTING -p icmp -j TRACE\\nCOMMIT\\n\"",
            "",
        );
        assert_eq!(required_features(&own, Backend::Legacy), vec![Netns, Veth, LegacyTrace]);
    }

    #[test]
    fn requires_nat_and_conntrack_from_a_nat_table() {
        let sc = with_host(
            "trace = false\n\
             iptables = \"*nat\\n:POSTROUTING ACCEPT [0:0]\\n-A POSTROUTING -o eth0 -j MASQUERADE\\nCOMMIT\\n\"",
            "",
        );
        assert_eq!(required_features(&sc, Backend::Legacy), vec![Netns, Veth, Conntrack, Nat]);
        assert_eq!(required_features(&sc, Backend::Nft), vec![Netns, Veth, NfTablesTrace, Conntrack, Nat]);
    }

    #[test]
    fn requires_conntrack_without_nat_from_a_state_match() {
        for rule in [
            "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A FORWARD -m state --state ESTABLISHED -j ACCEPT",
            "-A FORWARD -j CONNMARK --set-mark 1",
        ] {
            let sc = with_host(
                &format!("trace = false\niptables = \"*filter\\n:FORWARD DROP [0:0]\\n{rule}\\nCOMMIT\\n\""),
                "",
            );
            assert_eq!(required_features(&sc, Backend::Legacy), vec![Netns, Veth, Conntrack], "{rule}");
        }
    }

    #[test]
    fn requires_a_comment_or_a_chain_name_is_no_match() {
        let sc = with_host(
            "trace = false\niptables = \"# *nat and -m conntrack are not used here\\n*filter\\n:conntrack - [0:0]\\n\
             -A FORWARD -j conntrack\\nCOMMIT\\n\"",
            "",
        );
        assert_eq!(required_features(&sc, Backend::Legacy), vec![Netns, Veth]);
    }

    #[test]
    fn requires_ebtables_tables_from_the_text() {
        let cases = [
            ("*broute\\n:BROUTING ACCEPT\\n-A BROUTING -p IPv4 -j DROP\\n", vec![EbtablesBroute]),
            ("-t broute -A BROUTING -j DROP\\n", vec![EbtablesBroute]),
            ("*nat\\n:PREROUTING ACCEPT\\n", vec![EbtablesNat]),
            ("*filter\\n:FORWARD ACCEPT\\n*nat\\n:POSTROUTING ACCEPT\\n", vec![EbtablesFilter, EbtablesNat]),
            // Rules without a table go to filter, ebtables's default.
            ("-A FORWARD -j ACCEPT\\n", vec![EbtablesFilter]),
            ("# no broute here\\n*filter\\n:FORWARD ACCEPT\\n", vec![EbtablesFilter]),
        ];
        for (text, want) in cases {
            let sc = with_host(&format!("trace = false\nebtables = \"{text}\""), BRIDGE);
            let mut expected = vec![Netns, Veth, Bridge];
            expected.extend(want);
            assert_eq!(required_features(&sc, Backend::Legacy), expected, "{text}");
        }
    }

    #[test]
    fn requires_conntrack_for_conntrack_expectations() {
        let sc = with_host(
            "trace = false",
            "\n[[probe]]\nname = \"p\"\nfrom = \"peer\"\nto = \"10.0.0.1\"\n\
             [[probe.conntrack]]\nnetns = \"host\"\norig = { src = \"10.0.0.2\" }\n",
        );
        assert_eq!(required_features(&sc, Backend::Legacy), vec![Netns, Veth, Conntrack]);
    }

    #[test]
    fn requires_the_bundled_docker_masquerade() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/scenarios/docker-masquerade.toml");
        let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let common = [Netns, Veth, Bridge, BrNetfilter, EbtablesFilter, EbtablesNat, Conntrack, Nat];
        let legacy = required_features(&sc, Backend::Legacy);
        let nft = required_features(&sc, Backend::Nft);
        for f in common {
            assert!(legacy.contains(&f) && nft.contains(&f), "{f:?}: legacy {legacy:?}, nft {nft:?}");
        }
        assert!(legacy.contains(&LegacyTrace) && legacy.contains(&Nflog) && !legacy.contains(&NfTablesTrace));
        assert!(nft.contains(&NfTablesTrace) && !nft.contains(&LegacyTrace), "{nft:?}");
        for f in [EbtablesBroute, KernelLog, WireGuard, WireGuardUserspace, Tun] {
            assert!(!legacy.contains(&f) && !nft.contains(&f), "{f:?}");
        }
    }

    #[test]
    fn requires_features_come_in_feature_order_and_once() {
        let sc = with_host(
            "iptables = \"*nat\\n:POSTROUTING ACCEPT [0:0]\\nCOMMIT\\n*filter\\n:FORWARD DROP [0:0]\\n\
             -A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\\nCOMMIT\\n\"\n\
             ebtables = \"*filter\\n:FORWARD ACCEPT\\n*nat\\n:PREROUTING ACCEPT\\n\"",
            BRIDGE,
        );
        let need = required_features(&sc, Backend::Legacy);
        let order: Vec<Feature> = Feature::ALL.into_iter().filter(|f| need.contains(f)).collect();
        assert_eq!(need, order);
    }
}
