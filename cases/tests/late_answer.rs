//! A late answer reads as late, not as none (issue 25): a reply that reaches the sender after
//! its deadline is reported with how late it was and, where the captures show one, the wait for
//! a neighbour entry that made it late; `netpath record` writes a timeout that holds for it.
//!
//! The delay is made deterministic without netem (not in the host kernel, see FACTS.md): the
//! gateway's `arp` table drops every other ARP request it receives (`numgen inc mod 2`), so the
//! client's first request goes unanswered and its second, `retrans_time_ms` (400 ms) later, is
//! answered. The echo request waits in the client's neighbour queue meanwhile.

use std::path::Path;
use std::time::Duration;

use netpath::verdict::expect::FailureKind::*;
use netpath::{Backend, Scenario};
use netpath_cases::{assert_passes, run, want};

/// How long the client waits between two ARP requests: the answer comes that long after the send.
const RETRANS_MS: u64 = 400;

/// The client `cl` and its gateway `gw` on one link; the probe pings the gateway with
/// `timeout_ms`.
fn text(timeout_ms: u64) -> String {
    format!(
        r#"name = "late-answer"
backends = ["nft"]

[[netns]]
name = "cl"
sysctls = {{ "net.ipv4.neigh.eth0.retrans_time_ms" = "{RETRANS_MS}" }}

[[netns]]
name = "gw"
nft = """
table arp lose-first-request {{
  chain input {{
    type filter hook input priority 0; policy accept;
    arp operation request numgen inc mod 2 0 drop
  }}
}}
"""

[[veth]]
a = {{ netns = "cl", name = "eth0", addresses = ["10.77.0.1/24"] }}
b = {{ netns = "gw", name = "eth0", addresses = ["10.77.0.2/24"] }}

[[probe]]
name = "ping-gw"
from = "cl"
to = "10.77.0.2"
timeout_ms = {timeout_ms}
"#
    )
}

fn scenario(timeout_ms: u64) -> Scenario {
    let text = text(timeout_ms);
    Scenario::from_toml(&text, Path::new("late-answer.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A 150 ms timeout below the 400 ms ARP wait: the failure says the reply came, how long after
/// the deadline, that ARP for the gateway took the 400 ms, and the timeout that would cover it.
#[test]
fn a_reply_after_the_deadline_says_how_late_and_why() {
    let o = run(&scenario(150), Backend::Nft);
    let f = want(NoReply).packet(1).netns("cl").find(&o.probes[0].failures);
    let report = netpath::output::report::outcome(&o, true);
    let late = o.probes[0].exchanges[0].response.late.unwrap_or_else(|| panic!("no late reply:\n{report}"));
    assert!(late >= Duration::from_millis(RETRANS_MS), "{late:?}");
    let text = &f.detail;
    assert_eq!(f.location.as_deref(), Some("late-answer.toml:24"), "the probe's line: {report}");
    let past = netpath::evidence::neighbour::whole_ms(late - Duration::from_millis(150));
    assert!(
        text.contains(&format!("no reply reached cl within 150 ms: a reply came {past} after the 150 ms deadline")),
        "{text}"
    );
    // The ARP wait, request to answer at the client's interface, explains it.
    let held = o.probes[0].exchanges[0].response.held_up.as_ref().expect("the ARP wait is found");
    assert!(held.waited() >= Duration::from_millis(RETRANS_MS) && held.waited() <= late, "{held:?} {late:?}");
    assert!(
        text.contains(&format!(
            "{} of it was ARP for 10.77.0.2 at cl/eth0 (2 requests, the first to the answer)",
            netpath::evidence::neighbour::whole_ms(held.waited())
        )),
        "{text}"
    );
    eprintln!("{report}");
    let covering = netpath::verdict::answer::covering_timeout_ms(late);
    assert!(text.contains(&format!("timeout_ms = {covering} would cover it")), "{text}");
    // The reply is in the evidence, seen at the client's interface after the deadline.
    assert!(o.probes[0].exchanges[0].reply.seen.contains_key(&"cl/eth0".parse().unwrap()));
}

/// The twin: a timeout above the ARP wait, and the same datapath passes.
#[test]
fn a_timeout_above_the_wait_passes() {
    let o = assert_passes(&scenario(RETRANS_MS * 4), Backend::Nft).expect("nft runs here");
    let after = o.probes[0].exchanges[0].response.sender_after.expect("answered");
    assert!(after >= Duration::from_millis(RETRANS_MS), "the ARP wait happened: {after:?}");
}

/// `netpath record` over the failing file: the recorded timeout holds three times the slowest
/// answer, says so in a comment, and the recorded file passes when run.
#[test]
fn record_writes_a_timeout_that_holds_for_the_answers_it_saw() {
    let original = text(150);
    let sc = scenario(150);
    let outcome = run(&sc, Backend::Nft);
    let rec = netpath::output::record::expectations(&sc, &[outcome]);
    let slowest = *rec.timeouts.get("ping-gw").expect("the timeout was raised");
    assert!(slowest >= Duration::from_millis(RETRANS_MS), "{slowest:?}");
    let ms = rec.scenario.probe[0].timeout_ms;
    assert_eq!(ms, netpath::verdict::answer::covering_timeout_ms(slowest));
    assert!(u128::from(ms) * 1000 >= slowest.as_micros() * 3 && ms.is_multiple_of(100), "{ms} for {slowest:?}");
    let written = netpath::output::record::rewrite_recording(&original, &rec).unwrap();
    let comment = format!(
        "# Recorded: the slowest answer came {} after its send; 3 × that, rounded up to\n",
        netpath::evidence::neighbour::whole_ms(slowest)
    );
    assert!(
        written.contains(&format!(
            "{comment}# 100 ms (at least the default 1,000 ms), holds for a slower run.\ntimeout_ms = {ms}\n"
        )),
        "{written}"
    );
    let recorded =
        Scenario::from_toml(&written, Path::new("late-answer.toml")).unwrap_or_else(|e| panic!("{e}\n{written}"));
    assert_eq!(recorded.probe[0].timeout_ms, ms);
    assert_passes(&recorded, Backend::Nft);
    // A probe whose answers came in time keeps its timeout: nothing to raise.
    let roomy = scenario(RETRANS_MS * 4);
    let fast = run(&roomy, Backend::Nft);
    assert!(netpath::output::record::expectations(&roomy, &[fast]).timeouts.is_empty());
}
