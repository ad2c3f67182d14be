//! `netpath sweep` on the real kernel: what a dead run left (a netns with a process still in it,
//! its temp folders) goes, and the same things of a live run stay. A run is told dead by the pid
//! in its id: the "dead" run here has a pid above the kernel's PID_MAX_LIMIT, which no process
//! can ever have, the "live" one this test's own pid.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netpath::lab::netns::{self, Netns};
use netpath_cases::processes::{gone_within, sleep_marker, sweep, wait_for_marker, with_marker};

/// What one fake run made: a netns with a daemon in it, a step folder and a WireGuard folder.
/// The netns is made as netpath makes it: `ip netns add` would turn /run/netns into a bind mount
/// of itself, hiding the namespaces other runs on this machine have mounted there.
struct FakeRun {
    netns: String,
    /// Kept for a live run (its drop removes the netns), `None` for a dead run's.
    kept: Option<Netns>,
    daemon: String,
    folders: [PathBuf; 2],
}

impl FakeRun {
    fn make(pid: u32, alive: bool) -> FakeRun {
        let id = format!("{pid}x{:06x}", std::process::id() & 0xff_ffff);
        let netns = format!("netpath-{id}-t");
        let ns = Netns::create(&netns).unwrap_or_else(|e| panic!("{e}"));
        // A daemon of that netns, out of every process group and session of this test.
        let daemon = sleep_marker(44);
        let started = ns.command("sh").args(["-c", &format!("setsid sleep {daemon} >/dev/null 2>&1 &")]).status();
        assert!(started.unwrap().success());
        wait_for_marker(&daemon, Duration::from_secs(10));
        let folders = [format!("netpath-run-{id}"), format!("netpath-wg-{id}")].map(|n| std::env::temp_dir().join(n));
        for f in &folders {
            std::fs::create_dir_all(f.join("0.run")).unwrap();
            std::fs::write(f.join("0.run").join("state"), "10.88.0.2\n").unwrap();
        }
        let kept = if alive {
            Some(ns)
        } else {
            // What a killed run leaves: the bind mount stays when no drop runs.
            std::mem::forget(ns);
            None
        };
        FakeRun { netns, kept, daemon, folders }
    }

    fn netns_there(&self) -> bool {
        Path::new(netns::NETNS_DIR).join(&self.netns).exists()
    }
}

impl Drop for FakeRun {
    fn drop(&mut self) {
        for (pid, _) in with_marker(&self.daemon) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        if self.kept.take().is_none() {
            let _ = netns::remove_path(&Path::new(netns::NETNS_DIR).join(&self.netns));
        }
        for f in &self.folders {
            let _ = std::fs::remove_dir_all(f);
        }
    }
}

#[test]
fn sweep_kills_removes_what_a_dead_run_left_and_leaves_a_live_runs_alone() {
    netpath_cases::require_root();
    let dead = FakeRun::make((1 << 22) + 1, false);
    let live = FakeRun::make(std::process::id(), true);
    let (dead_pid, _) = with_marker(&dead.daemon)[0].clone();

    let out = sweep();

    assert!(out.contains(&format!("killed {dead_pid} (sleep) in {}", dead.netns)), "{out}");
    assert!(out.contains(&format!("removed {}\n", dead.netns)), "{out}");
    for f in &dead.folders {
        assert!(out.contains(&format!("removed {}\n", f.display())), "{out}");
        assert!(!f.exists(), "{}", f.display());
    }
    assert!(!dead.netns_there());
    assert_eq!(gone_within(&dead.daemon, Duration::from_secs(5)), vec![]);
    // The live run's twins of each: untouched.
    assert!(!out.contains(&live.netns), "{out}");
    assert!(live.netns_there());
    assert_eq!(with_marker(&live.daemon).len(), 1);
    assert!(live.folders.iter().all(|f| f.join("0.run/state").exists()));
}
