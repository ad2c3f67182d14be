//! A probe stops waiting for a packet's answer once the trace shows that very packet dropped
//! (netpath::drops). These twins prove the early stop is per packet: dropping one echo of a
//! probe never ends the wait for the next one, so a reply that does come is always seen, and a
//! probe that must not be answered still fails when it is.

use netpath::Backend;
use netpath::verdict::expect::FailureKind::*;
use netpath_cases::{edit_iptables, load, want};
use rstest::rstest;

/// docker-masquerade with the first of every two echo requests dropped at the top of FORWARD.
fn every_other_echo_dropped(count: u16, replies: bool) -> netpath::Scenario {
    let mut sc = load("docker-masquerade");
    edit_iptables(&mut sc, "host", |r| {
        r.replacen(
            "-A FORWARD -j DOCKER-USER",
            "-A FORWARD -p icmp --icmp-type echo-request -m statistic --mode nth --every 2 --packet 0 -j DROP\n\
             -A FORWARD -j DOCKER-USER",
            1,
        )
    });
    let p = sc.probe_mut("c1-to-external").expect("the probe");
    p.count = count;
    p.replies = Some(replies);
    p.timeout_ms = 3000;
    sc
}

/// Packet 1 is dropped (the trace shows it at `filter:FORWARD:rule:1`), packet 2 is answered:
/// "must not be answered" fails for packet 2 only, whatever the drop of packet 1 stopped early.
#[rstest]
fn a_drop_of_one_packet_never_hides_the_reply_to_the_next(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let sc = every_other_echo_dropped(2, false);
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    want(UnexpectedReply).packet(2).netns("c1").find(f);
    want(UnexpectedReply).packet(1).assert_none(f);
}

/// The same drop with replies expected: packet 1 fails for want of a reply, packets 2 and 4
/// (answered) do not, and packet 3 (dropped again) fails too.
#[rstest]
fn dropped_packets_fail_and_answered_ones_pass(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let sc = every_other_echo_dropped(4, true);
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    for k in [1, 3] {
        want(NoReply).packet(k).find(f);
    }
    for k in [2, 4] {
        want(NoReply).packet(k).assert_none(f);
    }
}
