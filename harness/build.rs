//! Compiles the drop source's eBPF program (bpf/drops.bpf.c) with clang for the BPF target; the
//! object is embedded in the library and relocated (CO-RE) against the running kernel's BTF when
//! a run loads it, so one build runs on every kernel netpath supports.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/drops.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=bpf/core.h");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("drops.bpf.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror", "-c", src, "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "netpath: cannot run `{clang}` to compile {src} ({e}): install clang and libbpf-dev \
                 (`apt-get install clang libbpf-dev`, or harness/install-deps.sh), or name another clang with CLANG="
            )
        });
    if !status.success() {
        panic!(
            "netpath: `{clang}` failed to compile {src} ({status}); if it says bpf/bpf_helpers.h is missing, \
             install libbpf-dev (`apt-get install libbpf-dev`, or harness/install-deps.sh)"
        );
    }
}
