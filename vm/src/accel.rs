//! KVM or TCG: KVM only where a guest really boots with it (here `/dev/kvm` exists but QEMU with
//! KVM aborts or hangs), found by a tiny boot and remembered in the cache.

use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::guest::{Accel, Boot, Tools};
use crate::kernels::Tree;

/// A KVM boot of a trivial command takes seconds; one still running after this hangs.
const PROBE_DEADLINE: Duration = Duration::from_secs(40);

/// The mode to boot in, and why; found once per process (the matrix's kernels share it, and
/// two probes at once would only slow each other down).
pub fn choose(tools: &Tools, tree: &Tree, cache: &Path) -> Result<(Accel, String), String> {
    static CHOSEN: Mutex<Option<(Accel, String)>> = Mutex::new(None);
    let mut chosen = CHOSEN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = chosen.as_ref() {
        return Ok(c.clone());
    }
    let c = find(tools, tree, cache)?;
    *chosen = Some(c.clone());
    Ok(c)
}

/// `NETPATH_VM_ACCEL=kvm|tcg` forces one; else the remembered result of the probe for this
/// host kernel and QEMU; else a probe boot of `tree` under KVM.
fn find(tools: &Tools, tree: &Tree, cache: &Path) -> Result<(Accel, String), String> {
    match std::env::var("NETPATH_VM_ACCEL").as_deref() {
        Ok("kvm") => return Ok((Accel::Kvm, "forced by NETPATH_VM_ACCEL=kvm".into())),
        Ok("tcg") => return Ok((Accel::Tcg, "forced by NETPATH_VM_ACCEL=tcg".into())),
        Ok(other) if !other.is_empty() => {
            return Err(format!("NETPATH_VM_ACCEL={other}: give kvm, tcg, or leave it unset to probe"));
        }
        _ => {}
    }
    if let Err(e) = fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return Ok((Accel::Tcg, format!("no usable /dev/kvm ({e})")));
    }
    let key = probe_key(tools);
    let memo = cache.join("accel-probe");
    if let Ok(text) = fs::read_to_string(&memo)
        && let Some((k, rest)) = text.split_once('\n')
        && k == key
    {
        let (mode, why) = rest.split_once(": ").unwrap_or((rest, ""));
        let accel = if mode.trim() == "kvm" { Accel::Kvm } else { Accel::Tcg };
        return Ok((accel, format!("{} (probed earlier; delete {} to probe again)", why.trim(), memo.display())));
    }
    let out = cache.join(format!("accel-probe-{}.d", std::process::id()));
    let _ = fs::remove_dir_all(&out);
    let boot = Boot { tools, tree, accel: Accel::Kvm, out: &out, deadline: PROBE_DEADLINE, cpus: 1, echo: false };
    let (accel, why) = match boot.run("true") {
        Ok(r) if r.code == 0 => (Accel::Kvm, format!("a KVM guest booted in {:.1} s", r.took.as_secs_f64())),
        Ok(r) => (Accel::Tcg, format!("a KVM guest's trivial command exited {}", r.code)),
        Err(e) if e.contains("did not boot within") => {
            (Accel::Tcg, format!("a KVM test boot hung (killed after {} s)", PROBE_DEADLINE.as_secs()))
        }
        Err(e) => (Accel::Tcg, format!("a KVM test boot failed: {}", e.lines().next().unwrap_or(""))),
    };
    let _ = fs::remove_dir_all(&out);
    let _ = fs::create_dir_all(cache);
    let _ = fs::write(&memo, format!("{key}\n{accel}: {why}\n"));
    Ok((accel, why))
}

/// What the probe's answer depends on: the host kernel and the QEMU build.
fn probe_key(tools: &Tools) -> String {
    let qemu = fs::metadata(&tools.qemu).and_then(|m| m.modified()).map(|t| format!("{t:?}")).unwrap_or_default();
    format!("host {} qemu {qemu}", netpath::kernel::running_release())
}
