//! The hostile corpus (`cases/hostile/`): scenario files a pull request could bring, each run as
//! a root CI job runs it (`netpath run --keep FILE`) and loaded through the library, and the
//! host compared before and after: the init netns's sysctls under /proc/sys/net and
//! /proc/sys/kernel, its links, addresses, routes and rulesets, and no file made outside the
//! artifacts folder. Nothing may panic or hang: each load has a deadline, each run another.
//!
//! Each file says what it expects on its first lines, as `tests/malformed/` does:
//!
//! - `# expect: LINE:COL phrase`, one line per problem: the file does not load, and the loader
//!   reports exactly those problems, in file order, each as `PATH:LINE:COL: ...phrase...`;
//! - `# expect-run: pass`: it loads, and the run passes;
//! - `# expect-run: error PHRASE`: it loads, and the run is an ERROR whose text has PHRASE
//!   (`{file}` in it stands for the file's path);
//! - `# setup: fifo NAME`, `device NAME` (a character device 1,5, what /dev/zero is),
//!   `symlink NAME TARGET`, `big NAME` (2 MiB, sparse): made beside a copy of the file in a
//!   scratch folder before it runs (a FIFO or a device cannot live in git).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use netpath::Scenario;
use rstest::rstest;

/// The longest a load may take.
const LOAD_DEADLINE: Duration = Duration::from_secs(10);
/// The longest `netpath run` of one file may take.
const RUN_DEADLINE: Duration = Duration::from_secs(120);
/// What traversal targets in the corpus are named after: nothing by this name may exist after.
const ESCAPE_MARK: &str = "netpath-hostile-escape";

#[derive(Debug)]
enum Class {
    /// Located load errors: `(line, column, phrase)`.
    Load(Vec<(usize, usize, String)>),
    Pass,
    RunError(String),
}

fn header(path: &Path, text: &str) -> (Class, Vec<Vec<String>>) {
    let mut load = vec![];
    let mut run = None;
    let mut setup = vec![];
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("# expect:") {
            let parsed = rest.trim().split_once(' ').and_then(|(at, phrase)| {
                let (l, c) = at.split_once(':')?;
                Some((l.parse().ok()?, c.parse().ok()?, phrase.trim().to_string()))
            });
            load.push(parsed.unwrap_or_else(|| panic!("{}: bad `{line}`", path.display())));
        } else if let Some(rest) = line.strip_prefix("# expect-run:") {
            run = Some(match rest.trim() {
                "pass" => Class::Pass,
                r => Class::RunError(
                    r.strip_prefix("error ").unwrap_or_else(|| panic!("{}: bad `{line}`", path.display())).into(),
                ),
            });
        } else if let Some(rest) = line.strip_prefix("# setup:") {
            setup.push(rest.split_whitespace().map(str::to_string).collect());
        }
    }
    let class = match (load.is_empty(), run) {
        (false, None) => Class::Load(load),
        (true, Some(run)) => run,
        _ => panic!("{}: give `# expect: LINE:COL phrase` lines or one `# expect-run:` line", path.display()),
    };
    (class, setup)
}

/// A scratch folder, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("netpath-hostile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The file to run: the corpus file itself, or a copy beside what its `# setup:` lines make.
fn prepare(path: &Path, setup: &[Vec<String>], scratch: &Scratch) -> PathBuf {
    if setup.is_empty() {
        return path.to_path_buf();
    }
    let copy = scratch.0.join(path.file_name().expect("a file name"));
    std::fs::copy(path, &copy).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
    for s in setup {
        let at = scratch.0.join(&s[1]);
        let tool = |program: &str, after: &[&str]| {
            let out = Command::new(program).arg(&at).args(after).output().map_err(|e| e.to_string())?;
            if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
        };
        let made = match s[0].as_str() {
            "fifo" => tool("mkfifo", &[]),
            "device" => tool("mknod", &["c", "1", "5"]),
            "symlink" => std::os::unix::fs::symlink(&s[2], &at).map_err(|e| e.to_string()),
            "big" => std::fs::File::create(&at).and_then(|f| f.set_len(2 << 20)).map_err(|e| e.to_string()),
            other => Err(format!("unknown setup `{other}`")),
        };
        made.unwrap_or_else(|e| panic!("{}: setup {s:?}: {e}", path.display()));
    }
    copy
}

/// Load `path` through the library on a thread of its own: the result, or a panic's or a
/// deadline's failure.
fn load_within(path: &Path) -> Result<netpath::Result<Scenario>, String> {
    let (tx, rx) = mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(|| Scenario::load(&owned)));
    });
    match rx.recv_timeout(LOAD_DEADLINE) {
        Ok(Ok(loaded)) => Ok(loaded),
        Ok(Err(p)) => Err(format!("loading {} panicked: {}", path.display(), netpath::error::panic_text(&p))),
        Err(_) => Err(format!("loading {} took more than {LOAD_DEADLINE:?}", path.display())),
    }
}

/// `netpath run --keep --backend all FILE`, killed at [`RUN_DEADLINE`]: exit code, stdout, stderr.
fn run_within(path: &Path, artifacts: &Path) -> (Option<i32>, String, String) {
    let mut child = Command::new(netpath_cases::netpath_bin())
        .args(["run", "--keep", "--backend", "all"])
        .arg(path)
        .env("NETPATH_ARTIFACTS", artifacts)
        .env_remove("NETPATH_STRICT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run netpath: {e}"));
    let started = Instant::now();
    while child.try_wait().expect("wait for netpath").is_none() {
        if started.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("netpath run {} took more than {RUN_DEADLINE:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("netpath's output");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Sysctls that change on their own (counters, random values, ids).
const VOLATILE: [&str; 7] = [
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/kernel/random/",
    "/proc/sys/kernel/pty/nr",
    "/proc/sys/kernel/perf_event_max_sample_rate",
    "/proc/sys/kernel/hung_task_detect_count",
    "/proc/sys/net/netfilter/nf_conntrack_count",
    "/proc/sys/fs/",
];

fn sysctls(dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        let name = path.display().to_string();
        if VOLATILE.iter().any(|v| name.starts_with(v)) {
            continue;
        }
        match e.file_type() {
            Ok(t) if t.is_dir() => sysctls(&path, out),
            Ok(t) if t.is_file() => {
                if let Ok(v) = std::fs::read_to_string(&path) {
                    out.insert(name, v);
                }
            }
            _ => {}
        }
    }
}

/// What a scenario must never change on the host: the init netns's sysctls (net and kernel),
/// links, addresses, routes and rulesets. Counters are left out of the saves: other traffic on
/// the machine moves them.
fn host_state() -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    sysctls(Path::new("/proc/sys/net"), &mut state);
    sysctls(Path::new("/proc/sys/kernel"), &mut state);
    for cmd in [
        "ip -br link",
        "ip -br addr",
        "ip route show table all",
        "ip -6 route show table all",
        "iptables-legacy-save | sed -e 's/\\[[0-9]*:[0-9]*\\]//' | grep -v '^#'",
        "iptables-nft-save | sed -e 's/\\[[0-9]*:[0-9]*\\]//' | grep -v '^#'",
        "ip6tables-legacy-save | sed -e 's/\\[[0-9]*:[0-9]*\\]//' | grep -v '^#'",
        "nft list ruleset",
    ] {
        let out = Command::new("sh").arg("-c").arg(cmd).output().expect("run sh");
        state.insert(cmd.to_string(), String::from_utf8_lossy(&out.stdout).into_owned());
    }
    state
}

fn changes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| format!("{k}: {:?} -> {:?}", before.get(k), after.get(k)))
        .collect()
}

/// Paths named after [`ESCAPE_MARK`] in the places the corpus aims at.
fn escapes() -> Vec<String> {
    ["/tmp", "/"]
        .iter()
        .flat_map(|d| {
            netpath_cases::entries_starting(Path::new(d), ESCAPE_MARK).into_iter().map(move |e| format!("{d}/{e}"))
        })
        .collect()
}

#[rstest]
fn hostile_file(#[files("hostile/*.toml")] path: PathBuf) {
    netpath_cases::require_root();
    // Runs of this test take turns (and a kernel-log run elsewhere, which sets the global
    // nf_log_all_netns while it observes, waits for this one), so the snapshots compare one file.
    let _turn = netpath::lab::global_sysctl::KernelLogLock::acquire_within(Duration::from_secs(300))
        .expect("the kernel-log lock");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (class, setup) = header(&path, &String::from_utf8_lossy(&bytes));
    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
    let scratch = Scratch::new(&stem);
    let artifacts = scratch.0.join("artifacts");
    let file = prepare(&path, &setup, &scratch);
    let before = host_state();
    assert_eq!(escapes(), Vec::<String>::new(), "left by something else: remove them");

    let loaded = load_within(&file).unwrap_or_else(|e| panic!("{e}"));
    let (code, stdout, stderr) = run_within(&file, &artifacts);
    let shown = format!("netpath run {} (exit {code:?}):\n{stdout}{stderr}", file.display());
    assert!(!stderr.contains("panicked") && !stdout.contains("panicked"), "{shown}");
    match &class {
        Class::Load(want) => {
            let err = match loaded {
                Ok(_) => panic!("{} loaded, but it is hostile", file.display()),
                Err(e) => e.to_string(),
            };
            let got: Vec<&str> = err.lines().collect();
            assert_eq!(got.len(), want.len(), "{}: want {} problem(s), got:\n{err}", file.display(), want.len());
            for (line, (l, c, phrase)) in got.iter().zip(want) {
                let at = format!("{}:{l}:{c}: ", file.display());
                assert!(line.starts_with(&at), "want a line starting `{at}`, got:\n{err}");
                assert!(line.contains(phrase.as_str()), "want `{phrase}` in:\n{line}");
                // The command reports the same, as an ERROR, and fails.
                assert!(stdout.contains(*line), "`{line}` is not in {shown}");
            }
            assert_eq!(code, Some(1), "{shown}");
        }
        Class::Pass => {
            loaded.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(code, Some(0), "{shown}");
            assert!(stdout.lines().last().is_some_and(|l| l.contains(" passed, 0 failed")), "{shown}");
        }
        Class::RunError(phrase) => {
            loaded.unwrap_or_else(|e| panic!("{e}"));
            let phrase = phrase.replace("{file}", &file.display().to_string());
            assert_eq!(code, Some(1), "{shown}");
            assert!(stdout.contains("ERROR ") && stdout.contains(&phrase), "want `{phrase}` in {shown}");
        }
    }
    // Artifacts only in the artifacts folder, one folder per run, nothing named by the file.
    for e in std::fs::read_dir(&artifacts).into_iter().flatten().flatten() {
        assert!(e.file_type().unwrap().is_dir(), "{} is not a run folder", e.path().display());
    }
    assert_eq!(escapes(), Vec::<String>::new(), "{} wrote outside the lab", file.display());
    let after = host_state();
    assert_eq!(changes(&before, &after), Vec::<String>::new(), "{} changed the host", file.display());
}

#[test]
fn the_corpus_covers_the_issue() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("hostile");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("cases/hostile")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for needed in ["sysctl-", "name-", "iface-", "extends-", "stdin-file-", "no-probe", "truncated-", "invalid-utf8"] {
        assert!(names.iter().any(|n| n.starts_with(needed)), "no `{needed}*` file in cases/hostile");
    }
    let (mut load, mut run) = (0, 0);
    for n in &names {
        let path = dir.join(n);
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        match header(&path, &text).0 {
            Class::Load(_) => load += 1,
            _ => run += 1,
        }
    }
    assert!(load >= 30 && run >= 3, "{load} load errors and {run} runs");
}

/// The checks above can fail: a file by the escape mark is found, a changed value is reported,
/// and the snapshot holds the values a hostile file went for.
#[test]
fn the_host_checks_see_what_they_look_for() {
    let marked = std::env::temp_dir().join(format!("{ESCAPE_MARK}-{}", std::process::id()));
    std::fs::write(&marked, "").unwrap();
    let found = escapes();
    let _ = std::fs::remove_file(&marked);
    assert_eq!(found, [format!("/tmp/{}", marked.file_name().unwrap().to_string_lossy())]);
    let before = host_state();
    for key in
        ["/proc/sys/kernel/panic", "/proc/sys/vm/swappiness", "/proc/sys/net/ipv4/ip_forward", "nft list ruleset"]
    {
        assert!(before.contains_key(key) || key.starts_with("/proc/sys/vm"), "the snapshot lacks {key}");
    }
    let mut after = before.clone();
    after.insert("/proc/sys/kernel/panic".into(), "0\n".into());
    assert_eq!(changes(&before, &after).len(), 1);
}

/// The global net.* sysctls refused at load are what this kernel says: every file under
/// /proc/sys/net of the host's netns that a fresh netns lacks (per-interface folders aside) is
/// in the list, and every listed key a fresh netns has is read-only there, or one known to be
/// writable there and global (a static key of the whole kernel).
#[test]
fn global_sysctls_are_those_this_kernel_keeps_out_of_a_netns() {
    netpath_cases::require_root();
    fn files(dir: &Path, out: &mut BTreeMap<String, bool>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => files(&path, out),
                Ok(_) => {
                    let writable = std::fs::metadata(&path).is_ok_and(|m| {
                        use std::os::unix::fs::PermissionsExt;
                        m.permissions().mode() & 0o222 != 0
                    });
                    let key = path.strip_prefix("/proc/sys").unwrap().to_string_lossy().replace('/', ".");
                    out.insert(key, writable);
                }
                Err(_) => {}
            }
        }
    }
    let mut host = BTreeMap::new();
    files(Path::new("/proc/sys/net"), &mut host);
    // /proc/sys/net is the netns's of the thread that reads it: a thread in a new netns.
    let fresh = std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        let mut fresh = BTreeMap::new();
        files(Path::new("/proc/sys/net"), &mut fresh);
        fresh
    })
    .join()
    .expect("the fresh netns thread");
    let per_iface = |k: &str| k.contains(".conf.") || k.contains(".neigh.");
    let global = netpath::scenario::sysctl::GLOBAL;
    let missing: Vec<&String> =
        host.keys().filter(|k| !fresh.contains_key(*k) && !per_iface(k) && !global.contains(&k.as_str())).collect();
    assert_eq!(missing, Vec::<&String>::new(), "host-only net sysctls not in scenario::sysctl::GLOBAL");
    let writable_global = ["net.netfilter.nf_hooks_lwtunnel", "net.netfilter.nf_conntrack_lwtunnel"];
    let writable: Vec<&&str> =
        global.iter().filter(|k| fresh.get(**k) == Some(&true) && !writable_global.contains(k)).collect();
    assert_eq!(writable, Vec::<&&str>::new(), "listed as global, yet a fresh netns may write them");
    // And every key the bundled scenarios set loads (and is no global one).
    for n in netpath_cases::load("handmade-docker").netns {
        for k in n.sysctls.keys() {
            netpath::scenario::sysctl::SysctlKey::parse(k).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
    }
}

/// Bundled files cut short at every tenth line and inside lines load, or fail at a located
/// line, within the deadline and without a panic; one that loads still has a probe.
#[test]
fn truncated_bundled_files_load_or_fail_located() {
    let dir = netpath_cases::scenarios_dir();
    let mut tried = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let cuts: Vec<usize> = text
            .match_indices('\n')
            .map(|(i, _)| i + 1)
            .step_by(10)
            .chain((1..8).map(|k| text.len() * k / 8))
            .filter(|c| text.is_char_boundary(*c))
            .collect();
        for cut in cuts {
            let part = text[..cut].to_string();
            let origin = path.clone();
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(std::panic::catch_unwind(|| Scenario::from_toml(&part, &origin)));
            });
            let loaded = match rx.recv_timeout(LOAD_DEADLINE) {
                Ok(Ok(loaded)) => loaded,
                Ok(Err(p)) => panic!("{} cut at {cut}: panicked: {}", path.display(), netpath::error::panic_text(&p)),
                Err(_) => panic!("{} cut at {cut}: no answer within {LOAD_DEADLINE:?}", path.display()),
            };
            match loaded {
                Ok(sc) => assert!(!sc.probe.is_empty(), "{} cut at {cut} loaded without a probe", path.display()),
                Err(e) => {
                    let located = format!("{}:", path.display());
                    let base = dir.join("base");
                    for line in e.to_string().lines() {
                        assert!(
                            line.starts_with(&located) || line.starts_with(&base.display().to_string()),
                            "{} cut at {cut}: not located: {line}",
                            path.display()
                        );
                    }
                }
            }
            tried += 1;
        }
    }
    assert!(tried > 200, "only {tried} cuts");
}

/// Files as large as netpath reads (just under `MAX_FILE_BYTES`), full of entries or of errors,
/// load within the deadline; one byte more is refused unread.
#[test]
fn the_largest_files_load_within_the_deadline() {
    let max = netpath::scenario::MAX_FILE_BYTES as usize;
    let lab = "name = \"big\"\n[[netns]]\nname = \"a\"\n[[netns]]\nname = \"b\"\n[[veth]]\n\
               a = { netns = \"a\", name = \"eth0\", addresses = [\"10.9.0.1/16\"] }\n\
               b = { netns = \"b\", name = \"eth0\", addresses = [\"10.9.0.2/16\"] }\n";
    let ping = "[[probe]]\nname = \"p\"\nfrom = \"a\"\nto = \"10.9.0.2\"\n";
    let fill = |head: &str, entry: &dyn Fn(usize) -> String, tail: &str| {
        let mut text = head.to_string();
        let mut i = 0;
        loop {
            let next = entry(i);
            if text.len() + next.len() + tail.len() > max {
                break;
            }
            text.push_str(&next);
            i += 1;
        }
        text + tail
    };
    let shapes = [
        ("probes", fill(lab, &|i| format!("[[probe]]\nname = \"p{i}\"\nfrom = \"a\"\nto = \"10.9.0.2\"\n"), "")),
        (
            "routes",
            fill(
                lab,
                &|i| {
                    format!(
                        "[[route]]\nnetns = \"a\"\nto = \"10.{}.{}.0/24\"\nvia = \"10.9.0.2\"\n",
                        i / 256 % 256,
                        i % 256
                    )
                },
                ping,
            ),
        ),
        (
            "netns",
            fill(
                "name = \"big\"\n",
                &|i| {
                    format!(
                        "[[netns]]\nname = \"n{i}\"\n[[veth]]\na = {{ netns = \"n{i}\", name = \"eth0\" }}\nb = {{ netns = \"n{i}\", name = \"eth1\" }}\n"
                    )
                },
                "[[probe]]\nname = \"p\"\nfrom = \"n0\"\nto = \"10.0.0.2\"\n",
            ),
        ),
        ("errors", fill(lab, &|i| format!("[[probe]]\nname = \"p{i}\"\nfrom = \"x\"\ncount = \"lots\"\n"), "")),
        (
            "sysctls",
            fill(
                "name = \"big\"\n[[netns]]\nname = \"a\"\n[netns.sysctls]\n",
                &|i| format!("\"kernel.k{i}\" = \"1\"\n"),
                ping,
            ),
        ),
    ];
    let scratch = Scratch::new("large");
    for (shape, text) in shapes {
        assert!(text.len() <= max && text.len() > max - 200, "{shape}: {} bytes", text.len());
        let path = scratch.0.join(format!("{shape}.toml"));
        std::fs::write(&path, &text).unwrap();
        let started = Instant::now();
        let loaded = load_within(&path).unwrap_or_else(|e| panic!("{shape}: {e}"));
        eprintln!("{shape}: {} bytes, loaded in {:?}: {}", text.len(), started.elapsed(), loaded.is_ok());
        if let Err(e) = loaded {
            let e = e.to_string();
            assert!(e.lines().all(|l| l.starts_with(&format!("{}:", path.display()))), "{shape}: {e}");
        }
        std::fs::write(&path, text + &" ".repeat(max)).unwrap();
        let err = load_within(&path).unwrap_or_else(|e| panic!("{shape}: {e}")).unwrap_err().to_string();
        assert!(err.contains("bytes, more than the 1024 KiB"), "{err}");
    }
}
