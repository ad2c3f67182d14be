//! `netpath record` regenerates a scenario's expectations from a run: the recorded file parses,
//! passes run after run (nothing the kernel chooses is pinned; a load split is recorded per
//! endpoint with a floor from its count), agrees with the hand-written expectations, and fails
//! naming the hop when a load-bearing rule goes.

use netpath::Backend;
use netpath::scenario::{Direction, PortExpect};
use netpath::verdict::expect::FailureKind::*;
use netpath::verdict::expect::HeaderField;
use netpath_cases::{edit_iptables, load, record, run, want, without_expectations, without_lines};
use rstest::rstest;

#[test]
fn recorded_docker_masquerade_matches_the_hand_written_one_and_passes() {
    let sc = load("docker-masquerade");
    let (recorded, warnings) = record(&sc);
    assert_eq!(warnings, Vec::<String>::new());
    let (hand, rec) = (&sc.probe[0], &recorded.probe[0]);
    // A recorded entry covers the packet a hand-written one names.
    let covers = |got: Option<netpath::scenario::Packets>, want: Option<netpath::scenario::Packets>| {
        let want = want.map_or(1, |w| w.first());
        got.is_none_or(|g| g.contains(want))
    };
    for want in hand.path.iter().filter(|p| p.exact.is_some()) {
        let got = rec
            .path
            .iter()
            .find(|p| {
                covers(p.packet, want.packet)
                    && p.direction == want.direction
                    && p.netns == want.netns
                    && (p.backend.is_none() || p.backend == want.backend)
            })
            .unwrap_or_else(|| panic!("no recorded path for {want:?}"));
        // The hand-written file names hooks only; the recording adds each one's verdict.
        let hooks = |p: &netpath::scenario::PathExpect| {
            p.exact.as_ref().map(|e| e.iter().map(|h| h.hook.clone()).collect::<Vec<_>>())
        };
        assert_eq!(hooks(got), hooks(want), "{:?} {}", want.packet, want.direction);
        let iptables =
            got.exact.iter().flatten().filter(|h| matches!(h.hook, netpath::observe::trace::Hook::Xt { .. }));
        assert!(iptables.clone().all(|h| h.verdict.is_some()), "every iptables hook has its verdict: {got:?}");
    }
    for want in &hand.addr {
        let got = rec
            .addr
            .iter()
            .find(|a| covers(a.packet, want.packet) && a.direction == want.direction && a.at == want.at)
            .unwrap_or_else(|| panic!("nothing recorded at {}", want.at));
        assert_eq!((got.src, got.dst), (want.src, want.dst), "{:?} {} at {}", want.packet, want.direction, want.at);
    }
    // c2 is on the bridge but never sees this flow: recorded as absent, once for every packet.
    let c2: Vec<_> =
        rec.addr.iter().filter(|a| a.at.to_string() == "c2/eth0" && a.direction == Direction::Request).collect();
    assert!(c2.len() == 1 && c2[0].absent && c2[0].packet.is_none(), "{c2:#?}");
    for b in &recorded.backends {
        netpath_cases::assert_passes(&recorded, *b);
    }
}

#[test]
fn recorded_expectations_catch_a_removed_masquerade() {
    let (recorded, _) = record(&without_expectations(&load("docker-masquerade")));
    let mut broken = recorded.clone();
    edit_iptables(&mut broken, "host", |r| without_lines(r, "MASQUERADE"));
    let o = run(&broken, Backend::Legacy);
    want(Header).packet(1).request().at("host/eth0").observed("192.168.0.2 > 10.171.77.30").find(&o.probes[0].failures);
}

/// Topology, rules and probes only, recorded, then run again and again under every backend it
/// allows: each run must pass. The load split of k8s-service lands differently every run, the
/// client ports change every run; cases/record-loop.sh does this for every bundled scenario.
#[rstest]
fn a_recording_of_a_bare_scenario_passes_every_later_run(
    #[values("docker-port-mapping", "k8s-service", "snat-reverse-only-snat", "wireguard-peer-to-lan")] name: &str,
) {
    let bare = without_expectations(&load(name));
    let (recorded, warnings) = record(&bare);
    assert_eq!(warnings, Vec::<String>::new(), "{name}");
    assert!(recorded.probe.iter().all(|p| !p.addr.is_empty()), "{name}: nothing recorded");
    for backend in recorded.allowed_backends() {
        for i in 0..3 {
            let o = run(&recorded, backend);
            assert!(
                o.passed(),
                "{name} [{}] run {i}:\n{}",
                backend.name(),
                netpath::output::report::outcome(&o, false)
            );
        }
    }
}

#[test]
fn a_recording_pins_no_port_the_kernel_chose() {
    let (recorded, _) = record(&without_expectations(&load("docker-port-mapping")));
    let p = &recorded.probe[0];
    let at = |point: &str, d: Direction| {
        p.addr.iter().find(|a| a.at.to_string() == point && a.direction == d).unwrap_or_else(|| panic!("{point}"))
    };
    // The ports the scenario fixes are numbers: the published port and the container's.
    assert_eq!(at("host/eth0", Direction::Request).dport, Some(PortExpect::Is(8080)));
    assert_eq!(at("c1/eth0", Direction::Request).dport, Some(PortExpect::Is(80)));
    assert_eq!(at("host/eth0", Direction::Reply).sport, Some(PortExpect::Is(8080)));
    // The client's ephemeral port is the relation: kept all the way, and back.
    assert_eq!(at("c1/eth0", Direction::Request).sport, Some(PortExpect::Kept));
    assert_eq!(at("ext/eth0", Direction::Reply).dport, Some(PortExpect::Kept));
    // Where ext sent it, its own port is the reference: nothing to say.
    assert_eq!(at("ext/eth0", Direction::Request).sport, None);
}

/// A port translation that appears where none should be, and one that is missing: the rule
/// SNATs what enters docker0 to ext's own address, from ports 20000-20010.
#[test]
fn port_relations_fail_when_a_translation_appears_or_goes() {
    const SNAT: &str = "-A POSTROUTING -o docker0 -p tcp -j SNAT --to-source 10.171.77.30:20000-20010\n";
    let with_snat =
        |r: &str| r.replace("-A DOCKER -i docker0 -j RETURN\n", &format!("{SNAT}-A DOCKER -i docker0 -j RETURN\n"));
    let mut bare = without_expectations(&load("docker-port-mapping"));
    bare.probe.truncate(1);

    // Recorded without it: a stray SNAT changes the port the client's connection had.
    let (plain, _) = record(&bare);
    let mut stray = plain.clone();
    edit_iptables(&mut stray, "host", with_snat);
    let o = run(&stray, Backend::Legacy);
    let at_c1 = || want(Header).packet(1).request().at("c1/eth0");
    let stray = at_c1().expected("10.171.77.30:kept > 192.168.0.2:80").find(&o.probes[0].failures);
    assert!(stray.mismatched.contains(&HeaderField::Sport), "{stray:#?}");

    // Recorded with it: the port is `changed` there; without the rule the translation is missing.
    let mut translated = bare.clone();
    edit_iptables(&mut translated, "host", with_snat);
    let (rec, _) = record(&translated);
    let c1 =
        rec.probe[0].addr.iter().find(|a| a.at.to_string() == "c1/eth0" && a.direction == Direction::Request).unwrap();
    assert_eq!(c1.sport, Some(PortExpect::Changed));
    let mut missing = rec.clone();
    edit_iptables(&mut missing, "host", |r| without_lines(r, "SNAT"));
    let o = run(&missing, Backend::Legacy);
    let kept = at_c1().expected("10.171.77.30:changed > 192.168.0.2:80").find(&o.probes[0].failures);
    assert!(kept.mismatched.contains(&HeaderField::Sport), "{kept:#?}");
}

#[rstest]
fn a_recording_without_the_dnat_fails_at_the_hop(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let (recorded, _) = record(&without_expectations(&load("docker-port-mapping")));
    let mut broken = recorded.clone();
    edit_iptables(&mut broken, "host", |r| without_lines(r, "-j DNAT"));
    let o = run(&broken, backend);
    let f = &o.probes[0].failures;
    want(PathExact).packet(1).request().netns("host").missing("nat:DOCKER:rule:2").find(f);
    want(NotSeen).packet(1).request().at("host/veth0594f4b").find(f);
}

#[rstest]
fn a_recording_without_one_sep_chain_fails_at_the_hop(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut bare = without_expectations(&load("k8s-service"));
    bare.probe.truncate(1);
    bare.probe[0].count = 40;
    let (recorded, _) = record(&bare);
    let mut broken = recorded.clone();
    edit_iptables(&mut broken, "node1", |r| without_lines(r, "Test-SEP-2"));
    // About half the connections are lost: each waits this long, not the default second.
    broken.probe[0].timeout_ms = 300;
    let o = run(&broken, backend);
    let f = &o.probes[0].failures;
    want(Answers).answered_by("ep2").observed("0").find(f);
    // Each connection the missing chain would have taken is lost in node1, and says so.
    let lost = want(NoReply).find(f);
    let first: Vec<String> = lost.seen_at.iter().take(2).map(ToString::to_string).collect();
    assert_eq!(first, ["client/eth0", "node1/mydocker"], "{lost:#?}");
    assert!(lost.last_hooks.contains_key("node1"), "{lost:#?}");
}

/// A recording grows with the distinct paths, not with the packets: recorded with count = 20
/// and count = 200, the file differs only in count and in the floor derived from it (none for
/// 20: an endpoint gets no connection with probability 2 × 2^-20, above the bound), and in a
/// timeout the recorder may raise for the slowest of 200 answers (on Debian 6.1 under QEMU/TCG
/// one took over a third of 1,000 ms, and the recording said 1,700).
#[test]
fn a_recording_grows_with_the_paths_not_with_the_count() {
    let mut bare = without_expectations(&load("k8s-service"));
    bare.probe.truncate(1);
    let recorded = |count: u16| {
        let mut sc = bare.clone();
        sc.probe[0].count = count;
        record(&sc)
    };
    let ((small, warn_small), (large, warn_large)) = (recorded(20), recorded(200));
    assert_eq!(warn_large, Vec::<String>::new());
    assert!(warn_small.len() == 1 && warn_small[0].contains("too few"), "{warn_small:?}");
    assert!(small.probe[0].answered_by.is_empty());
    assert_eq!(large.probe[0].answered_by.values().copied().collect::<Vec<_>>(), [66, 66]);
    // Apart from count and the floor, the same file.
    let mut same = small.clone();
    same.probe[0].count = 200;
    same.probe[0].answered_by = large.probe[0].answered_by.clone();
    assert!(
        large.probe[0].timeout_ms >= small.probe[0].timeout_ms,
        "{} < {}",
        large.probe[0].timeout_ms,
        small.probe[0].timeout_ms
    );
    same.probe[0].timeout_ms = large.probe[0].timeout_ms;
    assert_eq!(same.to_toml(), large.to_toml());
    assert!(large.probe[0].path.len() + large.probe[0].addr.len() < 100, "{}", large.to_toml());
}

/// A rule whose comment is its own in its chain is recorded by the comment, so a rule added
/// above it breaks nothing; rules that share a comment (kube-proxy's probability rules in
/// Test-SVC-1) keep their position. The twin: the comment moved to another rule of the chain
/// (one the packets do not match) fails.
#[test]
fn a_recording_names_a_rule_by_its_comment_where_the_comment_is_its_own() {
    let mut bare = without_expectations(&load("k8s-service"));
    bare.probe.truncate(1);
    let (recorded, _) = record(&bare);
    let hooks: Vec<String> =
        recorded.probe[0].path.iter().flat_map(|p| p.exact.iter().flatten()).map(|h| h.to_string()).collect();
    let has = |h: &str| hooks.iter().any(|x| x.starts_with(h));
    assert!(has(r#"nat:Test-SEP-1:rule:"testservice1 ep1" accept"#), "{hooks:#?}");
    assert!(has(r#"nat:Test-Service:rule:"test-service1" jump Test-SVC-1"#), "{hooks:#?}");
    assert!(has("nat:Test-SVC-1:rule:1 jump Test-SEP-1") && !has(r#"nat:Test-SVC-1:rule:""#), "{hooks:#?}");

    let mut moved = recorded.clone();
    edit_iptables(&mut moved, "node1", |r| {
        r.replace(
            "-A Test-SEP-1 -s 10.10.63.2/32",
            "-A Test-SEP-1 -s 192.0.2.99/32 -j RETURN\n-A Test-SEP-1 -s 10.10.63.2/32",
        )
    });
    for b in &moved.backends {
        netpath_cases::assert_passes(&moved, *b);
    }

    // The comment moves to the hairpin rule above, which the client's packets do not match.
    let mut renamed = recorded.clone();
    edit_iptables(&mut renamed, "node1", |r| {
        r.replace("testservice1 ep1", "ep1 renamed").replace(
            "-A Test-SEP-1 -s 10.10.63.2/32 -j Test-Mark",
            "-A Test-SEP-1 -s 10.10.63.2/32 -m comment --comment \"testservice1 ep1\" -j Test-Mark",
        )
    });
    let o = run(&renamed, Backend::Legacy);
    let f = want(PathExact).request().netns("node1").find(&o.probes[0].failures);
    assert!(f.detail.contains(r#"- nat:Test-SEP-1:rule:"testservice1 ep1" accept"#), "{}", f.detail);
}
