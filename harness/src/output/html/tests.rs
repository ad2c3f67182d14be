use super::*;
use crate::engine::ProbeOutcome;
use crate::evidence::packet::PacketInfo;
use crate::evidence::{Exchange, PacketEvidence, Response};
use crate::firewall::Backend;
use crate::verdict::{Failure, FailureKind};

const HOSTILE: &str = "<script>alert('x')</script>";

/// A scenario whose every free-text field and name carries markup, and a failed run of it.
fn hostile() -> (Scenario, Outcome) {
    let text = format!(
        r#"
name = "{HOSTILE}"
description = "{HOSTILE} \" onmouseover=alert(1) "
[[netns]]
name = "<b>a"
[[netns]]
name = "b"
[[veth]]
a = {{ netns = "<b>a", name = "<i>eth0", addresses = ["10.0.0.1/24", "fd00::1/64"] }}
b = {{ netns = "b", name = "eth0", addresses = ["10.0.0.2/24"] }}
[[probe]]
name = "{HOSTILE}"
from = "<b>a"
to = "10.0.0.2"
"#
    );
    let sc = Scenario::from_toml(&text, std::path::Path::new("hostile.toml")).unwrap();
    let mut request = PacketEvidence::default();
    let info = PacketInfo { src: "10.0.0.1".parse().ok(), dst: "10.0.0.2".parse().ok(), ..Default::default() };
    request.seen.insert("<b>a/<i>eth0".parse().unwrap(), info.clone());
    request.seen.insert("b/eth0".parse().unwrap(), PacketInfo { src: "10.0.0.9".parse().ok(), ..info });
    let exchange = Exchange {
        packet: 1,
        nonce: vec![],
        request,
        reply: PacketEvidence::default(),
        retransmissions: vec![],
        reply_retransmissions: vec![],
        replied: false,
        response: Response::of_kind(crate::scenario::Answer::Reply),
        answer: None,
    };
    let mut failure = Failure::new(FailureKind::NoReply, format!("reply to {HOSTILE}"), HOSTILE.into());
    failure.location = Some("hostile.toml:14".into());
    failure.packet = Some(1);
    let o = Outcome {
        scenario: sc.name.clone(),
        backend: Backend::Legacy,
        probes: vec![ProbeOutcome { name: HOSTILE.into(), exchanges: vec![exchange], failures: vec![failure] }],
        artifacts: None,
        wireguard: None,
        setup: Default::default(),
        frames: vec![],
        timings: Default::default(),
    };
    (sc, o)
}

#[test]
fn markup_from_the_scenario_never_reaches_the_page_as_markup() {
    let (sc, o) = hostile();
    let page = page(&sc, &o, Some("a\"b/"));
    assert_eq!(page.matches("<script").count(), 1, "only the page's own script: {page}");
    for raw in ["<b>", "<i>", "onmouseover=alert(1) ", "a\"b/"] {
        assert!(!page.contains(raw), "{raw} unescaped in {page}");
    }
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), "{page}");
    assert!(page.contains(r#"data-location="hostile.toml:14""#), "{page}");
    assert!(page.contains("<mark>10.0.0.9</mark>"), "the rewritten source is marked: {page}");
    assert!(page.contains(r#"data-point="&lt;b&gt;a/&lt;i&gt;eth0""#), "{page}");
    assert!(page.contains("fd00::1/64"), "both families' addresses: {page}");
    let results = crate::output::results::RunResult::from_outcome(HOSTILE, &o);
    let entries = [Entry { result: &results, page: Some(page_file(HOSTILE, "legacy")) }];
    let index = index(&entries);
    assert_eq!(index.matches("<script").count(), 0, "{index}");
    assert!(!page_file(HOSTILE, "legacy").contains(['/', '<']), "{}", page_file(HOSTILE, "legacy"));
}

#[test]
fn pages_reach_the_artifacts_by_relative_paths() {
    let p = std::path::Path::new;
    assert_eq!(relative(p("/tmp/report"), p("/tmp/netpath-artifacts/x-nft-1")), "../netpath-artifacts/x-nft-1/");
    assert_eq!(relative(p("/a/b"), p("/a/b/c")), "c/");
    assert_eq!(relative(p("/a/b"), p("/a/b")), "");
}
