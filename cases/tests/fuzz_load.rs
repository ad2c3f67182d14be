//! A fuzzer over scenario loading that runs on the stable toolchain, in `cargo test`, for a
//! bounded time: the bundled scenario files and the hostile corpus are mutated (bit flips, byte
//! changes, cuts, repeats, splices of two files, and insertions of what hostile files carry:
//! NULs, control characters, invalid UTF-8, `..`, `/dev/zero`, huge numbers, stray brackets and
//! quotes, table headers), each mutant is written beside copies of the bundled files (so
//! `extends` and `stdin_file` find real files) and loaded with [`Scenario::load`]. Every load
//! must answer within [`PER_INPUT`], without a panic, and either load (with a probe) or fail
//! with every problem located at a file of the folder.
//!
//! Deterministic: the same seed mutates the same way. `NETPATH_FUZZ_SEED=N` picks another seed,
//! `NETPATH_FUZZ_SECS=S` runs longer (default [`DEFAULT_SECS`]); a failing input is kept in
//! the scratch folder and its path printed, to reproduce it with `netpath run FILE`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use netpath::Scenario;

/// How long the fuzzer runs by default: CI's budget for it.
const DEFAULT_SECS: u64 = 12;
/// The longest one load may take (a debug build, on a loaded 2-core machine).
const PER_INPUT: Duration = Duration::from_secs(5);

/// The fewest inputs a run tries, however long they take (a TCG guest loads ~6 a second):
/// fuzzing goes on past its time until it has tried these.
const MIN_INPUTS: u64 = 200;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// What hostile files carry, inserted whole.
const TOKENS: &[&[u8]] = &[
    b"\0",
    b"\\u0000",
    b"\x1b[31m",
    b"\n",
    b"\r",
    b"\t",
    b"\xff",
    b"\xc3",
    b"..",
    b"../../",
    b"/",
    b"/dev/zero",
    b"/etc/shadow",
    b"\"",
    b"\"\"\"",
    b"'",
    b"[",
    b"]",
    b"{",
    b"}",
    b"=",
    b",",
    b".",
    b"99999999999999999999",
    b"-1",
    b"0",
    b"1e400",
    b"\n[[probe]]\n",
    b"\n[[netns]]\nname = \"..\"\n",
    b"\n[[step]]\nname = \"s\"\nnetns = \"host\"\nprogram = \"true\"\nstdin_file = \"../../../etc/passwd\"\n",
    b"\nextends = \"/dev/zero\"\n",
    b"\nextends = \"base/snat-reverse.toml\"\n",
    b"sysctls = { \"kernel.panic\" = \"0\", \"net/ipv4/../../x\" = \"1\" }\n",
    b"name = \"../../../tmp/x\"\n",
    b"{ netns = \"host\", name = \"eth\\u0000\" }",
];

/// What one load did.
enum Answer {
    Loaded { probes: usize },
    Refused(String),
    Panicked(String),
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        let at = rng.below(len + 1);
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            2 => data.truncate(at),
            3 if at < len => {
                let end = (at + 1 + rng.below(200)).min(len);
                data.drain(at..end);
            }
            4 if at < len => {
                let end = (at + 1 + rng.below(400)).min(len);
                let piece = data[at..end].to_vec();
                for _ in 0..1 + rng.below(8) {
                    data.splice(at..at, piece.iter().copied());
                }
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            _ => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
        }
    }
    data.truncate(2 << 20);
    data
}

/// A copy of the bundled scenarios folder (its `base/` and the files steps read), to fuzz in.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netpath-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let from = netpath_cases::scenarios_dir();
    for sub in ["", "base"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(from.join(sub)).unwrap().flatten() {
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    dir
}

fn seeds() -> Vec<Vec<u8>> {
    let mut out = vec![];
    let scenarios = netpath_cases::scenarios_dir();
    let hostile = Path::new(env!("CARGO_MANIFEST_DIR")).join("hostile");
    for dir in [scenarios.clone(), scenarios.join("base"), hostile] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "toml") {
                out.push(std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// Keep the failing input beside the scratch folder and fail with where it is.
fn fail(dir: &Path, input: &[u8], why: &str) -> ! {
    let kept = dir.with_extension("failing.toml");
    std::fs::write(&kept, input).unwrap();
    panic!("{why}; the input is kept in {}", kept.display());
}

#[test]
fn scenario_loading_survives_mutated_files() {
    let secs = std::env::var("NETPATH_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SECS);
    let seed = std::env::var("NETPATH_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x6e65_7470_6174_6824);
    let seeds = seeds();
    assert!(seeds.len() > 40, "only {} seed files", seeds.len());
    let dir = scratch();
    // One loader thread, fed one input at a time: a load that does not answer in time fails
    // the test instead of hanging it.
    let (to_loader, inputs) = mpsc::channel::<PathBuf>();
    let (to_fuzzer, answers) = mpsc::channel();
    std::thread::spawn(move || {
        for path in inputs {
            let started = Instant::now();
            let loaded = std::panic::catch_unwind(|| Scenario::load(&path));
            let answer = match loaded {
                Ok(Ok(sc)) => Answer::Loaded { probes: sc.probe.len() },
                Ok(Err(e)) => Answer::Refused(e.to_string()),
                Err(p) => Answer::Panicked(netpath::error::panic_text(&p)),
            };
            if to_fuzzer.send((answer, started.elapsed())).is_err() {
                return;
            }
        }
    });
    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    let (mut tried, mut loaded, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let prefix = format!("{}/", dir.display());
    while started.elapsed() < Duration::from_secs(secs) || tried < MIN_INPUTS {
        let input = mutate(&mut rng, &seeds);
        let file = dir.join("fuzz.toml");
        std::fs::write(&file, &input).unwrap();
        to_loader.send(file.clone()).unwrap();
        let why = |w: &str| format!("input {tried} (seed {seed}): {w}");
        let (answer, took) = match answers.recv_timeout(PER_INPUT) {
            Ok(a) => a,
            Err(_) => fail(&dir, &input, &why(&format!("no answer within {PER_INPUT:?}"))),
        };
        slowest = slowest.max(took);
        match answer {
            Answer::Loaded { probes } => {
                loaded += 1;
                if probes == 0 {
                    fail(&dir, &input, &why("it loaded without a probe"));
                }
            }
            Answer::Panicked(e) => fail(&dir, &input, &why(&format!("loading it panicked: {e}"))),
            Answer::Refused(e) => {
                if let Some(line) = e.lines().find(|l| !l.starts_with(&prefix)) {
                    fail(&dir, &input, &why(&format!("a problem not located in {}: {line}", dir.display())));
                }
            }
        }
        tried += 1;
    }
    eprintln!(
        "fuzzed scenario loading for {:.1} s: {tried} inputs, {loaded} loaded, the slowest load took {slowest:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(tried >= MIN_INPUTS, "only {tried} inputs");
    let _ = std::fs::remove_dir_all(&dir);
}
