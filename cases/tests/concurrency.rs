//! Labs run in parallel (`netpath run -j`, cargo's test threads): what they open at the same
//! time must neither hang nor mix up.

use std::sync::Barrier;

use netpath::lab::netns::Netns;
use netpath::observe::capture::PcapThread;
use netpath_cases::require_root;

/// libpcap's NFLOG configuration numbers its requests from one unsynchronized static and waits
/// without a timeout for the matching ack, so opening NFLOG handles from several threads at once
/// blocked one of them forever (a CI run hung for 90 minutes). netpath serializes those opens;
/// without that, this test fails within a few rounds with "did not finish within 20s".
#[test]
fn nflog_handles_opened_by_many_threads_at_once_all_open() {
    require_root();
    const THREADS: usize = 6;
    const ROUNDS: usize = 15;
    let run = netpath::lab::netns::new_run_id();
    let namespaces: Vec<Netns> = (0..THREADS)
        .map(|i| Netns::create(&format!("{}{run}-nflog{i}", netpath::lab::netns::PREFIX)).expect("create netns"))
        .collect();
    for round in 0..ROUNDS {
        let barrier = Barrier::new(THREADS);
        let opened: Vec<Result<(), String>> = std::thread::scope(|s| {
            let threads: Vec<_> = namespaces
                .iter()
                .map(|ns| {
                    let entry = ns.entry().expect("netns entry");
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        PcapThread::start(entry, "nflog:0,1").and_then(PcapThread::stop).map(drop)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().expect("opener panicked")).collect()
        });
        for (i, r) in opened.iter().enumerate() {
            assert!(r.is_ok(), "round {round}, netns {i}: {}", r.as_ref().unwrap_err());
        }
    }
}
