//! A run leaves the init netns as it found it and removes every namespace it made.

use std::process::Command;

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("run sh");
    format!("$ {cmd}\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// What a run must not change in the init netns. Counters are zeroed out of the saves: other
/// traffic on the machine moves them.
fn init_netns_state() -> String {
    [
        "ip -br link",
        "ip -br addr",
        "ip route show table all",
        "iptables-legacy-save | sed -e 's/\\[[0-9]*:[0-9]*\\]//' | grep -v '^#'",
        "iptables-nft-save | sed -e 's/\\[[0-9]*:[0-9]*\\]//' | grep -v '^#'",
        "ebtables-nft-save | grep -v '^#'",
        "nft list ruleset",
        "cat /proc/sys/net/netfilter/nf_log/2 /proc/sys/net/netfilter/nf_log_all_netns /proc/sys/net/ipv4/ip_forward",
    ]
    .iter()
    .map(|c| sh(c))
    .collect()
}

fn netpath_namespaces_of(run_pid: u32) -> Vec<String> {
    let prefix = format!("netpath-{run_pid}x");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_run_changes_nothing_in_the_init_netns_and_leaves_no_namespace() {
    netpath_cases::require_root();
    // A kernel-log run elsewhere sets nf_log_all_netns while it observes: take its turn so the
    // snapshots compare this run alone.
    let _turn = netpath::global_sysctl::KernelLogLock::acquire_within(std::time::Duration::from_secs(120))
        .expect("the kernel-log lock");
    let before = init_netns_state();
    let sc = netpath_cases::load("docker-masquerade");
    // Passing and failing runs both clean up: run the negative twin's shape too.
    netpath_cases::assert_passes(&sc, netpath::Backend::Legacy);
    let mut broken = sc.clone();
    broken.netns_mut("host").unwrap().iptables = Some("*filter\n:FORWARD DROP [0:0]\nCOMMIT\n".into());
    assert!(!netpath_cases::run(&broken, netpath::Backend::Legacy).passed());
    let scenario_ns: Vec<String> = netpath_namespaces_of(std::process::id())
        .into_iter()
        .filter(|n| sc.netns.iter().any(|s| n.ends_with(&format!("-{}", s.name))))
        .collect();
    assert_eq!(scenario_ns, Vec::<String>::new());
    let after = init_netns_state();
    assert_eq!(before, after, "the init netns changed");
}

#[test]
fn a_panic_inside_a_lab_still_removes_its_namespaces() {
    netpath_cases::require_root();
    let result = std::panic::catch_unwind(|| {
        let mut lab = netpath::lab::Lab::new().unwrap();
        lab.add_netns("panic-a").unwrap();
        lab.add_netns("panic-b").unwrap();
        assert!(std::path::Path::new("/run/netns").join(lab.full_name("panic-a")).exists());
        panic!("a test failing half way");
    });
    assert!(result.is_err());
    let left: Vec<String> =
        netpath_namespaces_of(std::process::id()).into_iter().filter(|n| n.contains("-panic-")).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
