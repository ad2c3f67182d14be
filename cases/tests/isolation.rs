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
        "ipset list -n",
        "nfacct list",
        "ls /var/lib/cni /run/containers/networks /run/cni 2>&1",
        "cat /proc/sys/net/netfilter/nf_log/2 /proc/sys/net/netfilter/nf_log_all_netns /proc/sys/net/ipv4/ip_forward",
    ]
    .iter()
    .map(|c| sh(c))
    .collect()
}

#[test]
fn a_run_changes_nothing_in_the_init_netns_and_leaves_no_namespace() {
    netpath_cases::require_root();
    // A kernel-log run elsewhere sets nf_log_all_netns while it observes: take its turn so the
    // snapshots compare this run alone.
    let _turn = netpath::lab::global_sysctl::KernelLogLock::acquire_within(std::time::Duration::from_secs(120))
        .expect("the kernel-log lock");
    let before = init_netns_state();
    let sc = netpath_cases::load("docker-masquerade");
    // Passing and failing runs both clean up: run the negative twin's shape too.
    netpath_cases::assert_passes(&sc, netpath::Backend::Legacy);
    let mut broken = sc.clone();
    // An empty nat table stays: the scenario's `never = ["nat"]` must name a table that exists.
    broken.netns_mut("host").unwrap().iptables =
        Some("*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:FORWARD DROP [0:0]\nCOMMIT\n".into());
    assert!(!netpath_cases::run(&broken, netpath::Backend::Legacy).passed());
    let scenario_ns: Vec<String> = netpath_cases::namespaces_of(std::process::id())
        .into_iter()
        .filter(|n| sc.netns.iter().any(|s| n.ends_with(&format!("-{}", s.name))))
        .collect();
    assert_eq!(scenario_ns, Vec::<String>::new());
    let after = init_netns_state();
    assert_eq!(before, after, "the init netns changed");
}

/// The scenarios whose steps run real tools (CNI plugins, netavark, nfacct, ipset) leave the
/// init netns as they found it, passing or failing, also when a step fails or hangs: the tools
/// only ever run inside the lab's namespaces.
#[test]
fn tool_steps_change_nothing_in_the_init_netns_and_leave_nothing() {
    netpath_cases::require_root();
    let _turn = netpath::lab::global_sysctl::KernelLogLock::acquire_within(std::time::Duration::from_secs(120))
        .expect("the kernel-log lock");
    let before = init_netns_state();
    let mut names = vec![];
    for stem in ["cni-bridge-portmap", "netavark-bridge-portmap", "kube-proxy-nfacct-ipset"] {
        let sc = netpath_cases::load(stem);
        names.extend(sc.netns.iter().map(|n| n.name.clone()));
        for backend in sc.backends.clone() {
            netpath_cases::assert_passes(&sc, backend);
        }
        // A twin that fails its expectations, one whose ADD step fails, one whose step hangs.
        let mut failing = sc.clone();
        failing.probe[0].to = "10.171.77.99".parse().unwrap();
        if let Some(o) = netpath_cases::run_or_skip(&failing, sc.backends[0]) {
            assert!(!o.passed());
        }
        let mut broken = sc.clone();
        broken.step[0].program = "sh".into();
        broken.step[0].args = vec!["-c".into(), "echo half way >&2; exit 1".into()];
        assert!(netpath::run(&broken, sc.backends[0], &netpath::RunOptions::default()).is_err());
        let mut hanging = sc.clone();
        hanging.step[0].program = "sleep".into();
        hanging.step[0].args = vec!["600".into()];
        hanging.step[0].timeout_ms = 200;
        assert!(netpath::run(&hanging, sc.backends[0], &netpath::RunOptions::default()).is_err());
    }
    let left: Vec<String> = netpath_cases::namespaces_of(std::process::id())
        .into_iter()
        .filter(|n| names.iter().any(|s| n.ends_with(&format!("-{s}"))))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    assert_eq!(netpath_cases::run_dirs_of(std::process::id()), Vec::<String>::new());
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
        netpath_cases::namespaces_of(std::process::id()).into_iter().filter(|n| n.contains("-panic-")).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
