//! Evidence under load.
//!
//! Opt-in (`NETPATH_LOAD=1 cargo test -p netpath-cases --test load`): 10,000 traced packets,
//! 5,000 ICMP echoes and 5,000 UDP datagrams sent as fast as their answers come, through the
//! docker topology under each backend. The run fails with "evidence incomplete" if the kernel
//! reports a lost frame (ps_drop, ps_ifdrop), a gap in the NFLOG sequence numbers or an
//! nf_tables trace overrun; beyond that, every packet must show up at every capture point it
//! crosses and in the host's trace, so no loss can hide. `NETPATH_LOAD_REPEAT=16` runs it 16
//! times per backend and counts the runs whose evidence was incomplete (all must be 0).
//!
//! Always: 10 UDP probes of 1,000 datagrams make IPv4 ids collide, and every packet's events
//! must still be its own ([`netpath_cases::udp_collision_scenario`]): 3 runs per backend, 20
//! with `NETPATH_LOAD=1`.

use netpath::{Backend, Error, RunOptions};

/// The backends one after the other, never at once: each run has the machine to itself.
#[test]
fn ten_thousand_traced_packets_lose_nothing() {
    if std::env::var_os("NETPATH_LOAD").is_none() {
        eprintln!("load test not run: set NETPATH_LOAD=1 (it sends 10,000 packets per backend)");
        return;
    }
    let repeat: usize = std::env::var("NETPATH_LOAD_REPEAT").ok().and_then(|n| n.parse().ok()).unwrap_or(1);
    let mut report = vec![];
    for backend in [Backend::Legacy, Backend::Nft] {
        let sc = netpath_cases::load_scenario(5, 5, 2);
        if let Err(skip) = netpath_cases::check(&sc, backend) {
            eprintln!("{skip}");
            continue;
        }
        let (mut incomplete, mut wrong) = (vec![], vec![]);
        for _ in 0..repeat {
            match netpath::run(&sc, backend, &RunOptions::default()) {
                Ok(o) => wrong.extend(lost(&o)),
                Err(Error::EvidenceIncomplete { losses, .. }) => incomplete.push(losses.join("; ")),
                Err(e) => panic!("{} [{}] did not run: {e}", sc.name, backend.name()),
            }
        }
        let first = |v: &[String]| v.first().map(|l| format!(" (first: {l})")).unwrap_or_default();
        let line = format!(
            "10,000 traced packets, {}: evidence incomplete in {} of {repeat} runs{}; a packet without its evidence in {} runs{}",
            backend.name(),
            incomplete.len(),
            first(&incomplete),
            wrong.len(),
            first(&wrong),
        );
        eprintln!("{line}");
        report.push((incomplete.is_empty() && wrong.is_empty(), line));
    }
    assert!(report.iter().all(|(ok, _)| *ok), "{report:#?}");
}

/// What a run that passed still lacks: a packet not captured where it passes, or not traced.
fn lost(o: &netpath::Outcome) -> Option<String> {
    if !o.passed() {
        return Some(netpath::output::report::outcome(o, false));
    }
    let points = ["c1/eth0", "host/veth0594f4b", "host/docker0", "host/eth0", "ext/eth0"];
    let mut packets = 0;
    for p in &o.probes {
        for ex in &p.exchanges {
            packets += 1;
            for at in points {
                for (dir, pe) in [("request", &ex.request), ("reply", &ex.reply)] {
                    if !pe.seen.keys().any(|k| k.to_string() == at) {
                        return Some(format!("{} packet {} {dir} not captured at {at}", p.name, ex.packet));
                    }
                }
            }
            if ex.request.path.get("host").is_none_or(|p| p.is_empty()) {
                return Some(format!("{} packet {}: no trace", p.name, ex.packet));
            }
        }
    }
    (packets != 10_000).then(|| format!("{packets} packets instead of 10,000"))
}

/// Issue 24 item 3: a request whose IPv4 id an answer (or another probe's request) also had lost
/// its nf_tables trace events to that packet. Every run must pass, and across the runs of a
/// backend the frames must show at least one key naming two packets, or the test proved nothing.
#[test]
fn colliding_ipv4_ids_leave_every_event_with_its_own_packet() {
    let runs = if std::env::var_os("NETPATH_LOAD").is_some() { 20 } else { 3 };
    let sc = netpath_cases::udp_collision_scenario();
    for backend in [Backend::Legacy, Backend::Nft] {
        let mut collisions = vec![];
        for run in 1..=runs {
            let o = netpath_cases::run_or_return!(&sc, backend);
            let failures: Vec<_> = o.probes.iter().flat_map(|p| p.failures.iter().map(move |f| (&p.name, f))).collect();
            assert!(
                failures.is_empty(),
                "run {run} of {runs} [{}]: {} failures, the first: {:#?}",
                backend.name(),
                failures.len(),
                &failures[..failures.len().min(3)]
            );
            assert_eq!(o.probes.iter().map(|p| p.exchanges.len()).sum::<usize>(), 10_000);
            collisions.push(netpath_cases::key_collisions(&o));
        }
        eprintln!(
            "{} [{}]: {runs} of {runs} runs passed; keys naming two packets, per run: {collisions:?}",
            sc.name,
            backend.name()
        );
        assert!(
            collisions.iter().sum::<usize>() > 0,
            "no IPv4 id named two packets in {runs} runs under {}: nothing was tested",
            backend.name()
        );
    }
}
