//! Evidence under load (opt-in: `NETPATH_LOAD=1 cargo test -p netpath-cases --test load`):
//! 10,000 traced packets, 5,000 ICMP echoes and 5,000 UDP datagrams sent as fast as their
//! answers come, through the docker topology under each backend. The run fails with
//! "evidence incomplete" if the kernel reports a lost frame (ps_drop, ps_ifdrop), a gap in the
//! NFLOG sequence numbers or an nf_tables trace overrun; beyond that, every packet must show up
//! at every capture point it crosses and in the host's trace, so no loss can hide.

use netpath::Backend;

/// The backends one after the other, never at once: each run has the machine to itself.
#[test]
fn ten_thousand_traced_packets_lose_nothing() {
    if std::env::var_os("NETPATH_LOAD").is_none() {
        eprintln!("load test not run: set NETPATH_LOAD=1 (it sends 10,000 packets per backend)");
        return;
    }
    for backend in [Backend::Legacy, Backend::Nft] {
        under(backend);
    }
}

fn under(backend: Backend) {
    let sc = netpath_cases::load_scenario(5, 5, 2);
    let o = netpath_cases::run_or_return!(&sc, backend);
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, false));
    let points = ["c1/eth0", "host/veth0594f4b", "host/docker0", "host/eth0", "ext/eth0"];
    let mut packets = 0;
    for p in &o.probes {
        for ex in &p.exchanges {
            packets += 1;
            for at in points {
                for (dir, pe) in [("request", &ex.request), ("reply", &ex.reply)] {
                    assert!(
                        pe.seen.keys().any(|k| k.to_string() == at),
                        "{} packet {} {dir} not captured at {at}",
                        p.name,
                        ex.packet
                    );
                }
            }
            assert!(
                ex.request.path.get("host").is_some_and(|p| !p.is_empty()),
                "{} packet {}: no trace",
                p.name,
                ex.packet
            );
        }
    }
    assert_eq!(packets, 10_000);
}
