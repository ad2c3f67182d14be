//! `netpath record` regenerates a scenario's expectations from a run: the recorded file parses,
//! passes, agrees with the hand-written expectations, and fails when the datapath changes.

use std::path::Path;

use netpath::scenario::Direction;
use netpath::{Backend, Scenario};
use netpath_cases::{load, run};

fn record(sc: &Scenario) -> Scenario {
    let outcomes: Vec<_> = sc.backends.iter().map(|b| run(sc, *b)).collect();
    let recorded = netpath::record::expectations(sc, &outcomes);
    // Through the file format, as `netpath record` writes it.
    Scenario::from_toml(&recorded.to_toml(), Path::new("recorded.toml")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn recorded_docker_masquerade_matches_the_hand_written_one_and_passes() {
    let sc = load("docker-masquerade");
    let recorded = record(&sc);
    let (hand, rec) = (&sc.probe[0], &recorded.probe[0]);
    for want in hand.path.iter().filter(|p| p.exact.is_some()) {
        let got = rec
            .path
            .iter()
            .find(|p| {
                p.packet == want.packet
                    && p.direction == want.direction
                    && p.netns == want.netns
                    && (p.backend.is_none() || p.backend == want.backend)
            })
            .unwrap_or_else(|| panic!("no recorded path for {want:?}"));
        assert_eq!(got.exact, want.exact, "packet {} {}", want.packet, want.direction);
    }
    for want in &hand.addr {
        let got = rec
            .addr
            .iter()
            .find(|a| a.packet == want.packet && a.direction == want.direction && a.at == want.at)
            .unwrap_or_else(|| panic!("nothing recorded at {}", want.at));
        assert_eq!((got.src, got.dst), (want.src, want.dst), "{} {} at {}", want.packet, want.direction, want.at);
    }
    // c2 is on the bridge but never sees this flow: recorded as absent.
    assert!(rec.addr.iter().any(|a| a.at.to_string() == "c2/eth0" && a.direction == Direction::Request && a.absent));
    for b in &recorded.backends {
        netpath_cases::assert_passes(&recorded, *b);
    }
}

#[test]
fn recorded_expectations_catch_a_removed_masquerade() {
    let recorded = record(&load("docker-masquerade"));
    let mut broken = recorded.clone();
    let host = broken.netns_mut("host").unwrap();
    let rules = host.iptables.take().unwrap();
    host.iptables = Some(rules.lines().filter(|l| !l.contains("MASQUERADE")).map(|l| format!("{l}\n")).collect());
    let o = run(&broken, Backend::Legacy);
    assert!(o.probes[0].failures.iter().any(|f| f.what == "addresses of packet 1 request at host/eth0"));
}
