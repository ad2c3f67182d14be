//! Booting a kernel tree with virtme-ng: the host's root shared read-only, a writable folder that
//! comes back, the modules the cases need loaded first, the whole VM under a deadline, the
//! console kept.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::kernels::Tree;

/// What the bundled cases need from the kernel, loaded before anything runs: udev's module
/// autoloading is off in the guest (it costs seconds of settle time), and a module that is
/// missing shows in `modules-missing` instead of as a puzzling skip. Names that a kernel has
/// built in or lacks (nf_log_syslog is nf_log_ipv4 before 5.12; 7.x has no legacy ebtables)
/// are reported, not fatal.
pub const MODULES: &[&str] = &[
    "veth",
    "bridge",
    "br_netfilter",
    "tun",
    "wireguard",
    "vxlan",
    "macvlan",
    "nf_conntrack",
    "nf_conntrack_netlink",
    "nf_nat",
    "nfnetlink_log",
    "nf_log_syslog",
    "nf_log_ipv4",
    "nf_tables",
    "nft_chain_nat",
    "nft_compat",
    "nft_ct",
    "nft_nat",
    "nft_masq",
    "nft_log",
    "nft_limit",
    "nft_reject_inet",
    "nft_meta_bridge",
    "nft_reject_bridge",
    "ip_tables",
    "iptable_raw",
    "iptable_filter",
    "iptable_nat",
    "iptable_mangle",
    "ip6_tables",
    "ip6table_raw",
    "ip6table_filter",
    "ip6table_nat",
    "ip6table_mangle",
    "xt_TRACE",
    "xt_LOG",
    "xt_NFLOG",
    "xt_MASQUERADE",
    "xt_conntrack",
    "xt_nat",
    "xt_physdev",
    "xt_addrtype",
    "xt_comment",
    "xt_mark",
    "xt_multiport",
    "xt_statistic",
    "xt_tcpudp",
    "xt_REDIRECT",
    "ebtables",
    "ebtable_filter",
    "ebtable_nat",
    "ebtable_broute",
    "ebt_log",
    "ebt_nflog",
];

/// Hardware acceleration: KVM where it really works, else QEMU's software emulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// The programs a boot needs, found: `vng` from the project's venv (or PATH) and the venv's bin
/// folder, which must be on the PATH vng runs with (it starts `virtme-run` by name).
#[derive(Debug, Clone)]
pub struct Tools {
    vng: PathBuf,
    path: String,
    pub qemu: PathBuf,
}

impl Tools {
    pub fn find() -> Result<Tools, String> {
        let fix = "run `bash vm/install-deps.sh` as root";
        let venvs = venvs();
        let vng = venvs
            .iter()
            .map(|v| v.join("bin/vng"))
            .find(|p| p.is_file())
            .or_else(|| netpath::tool::on_path("vng"))
            .ok_or_else(|| {
                let tried: Vec<String> = venvs.iter().map(|v| v.display().to_string()).collect();
                format!("virtme-ng (vng) is in none of the venvs {} nor on PATH: {fix}", tried.join(", "))
            })?;
        // What vng and its helpers will search: the venv, the caller's PATH, and the sbin folders
        // that a non-login root shell may lack (depmod, udevadm).
        let bin = vng.parent().unwrap_or(Path::new("/")).display().to_string();
        let path = format!("{bin}:{}:/usr/sbin:/usr/bin:/sbin:/bin", std::env::var("PATH").unwrap_or_default());
        let find = |program: &str| std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file());
        let mut qemu = None;
        for (program, package) in [
            ("qemu-system-x86_64", "qemu-system-x86"),
            ("busybox", "busybox-static"),
            ("depmod", "kmod"),
            ("udevadm", "udev"),
        ] {
            let found =
                find(program).ok_or_else(|| format!("{program} is missing (Debian package {package}): {fix}"))?;
            qemu = qemu.or(Some(found));
        }
        Ok(Tools { vng, path, qemu: qemu.unwrap_or_default() })
    }
}

/// Where vm/install-deps.sh puts virtme-ng, in the order looked at: `NETPATH_VM_VENV`, the fixed
/// `/opt/netpath/venv` (the same for root under sudo and for the user who called sudo, as in CI),
/// then the per-user venv of older installs (HOME's, and SUDO_USER's when HOME is root's).
fn venvs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::env::var_os("NETPATH_VM_VENV").map(PathBuf::from).into_iter().collect();
    v.push("/opt/netpath/venv".into());
    if let Some(home) = std::env::var_os("HOME") {
        v.push(PathBuf::from(home).join(".cache/netpath/venv"));
    }
    if let Ok(user) = std::env::var("SUDO_USER") {
        v.push(PathBuf::from("/home").join(user).join(".cache/netpath/venv"));
    }
    v
}

/// One boot.
pub struct Boot<'a> {
    pub tools: &'a Tools,
    pub tree: &'a Tree,
    pub accel: Accel,
    /// Shared read-write at the same path in the guest; the command's results go there.
    pub out: &'a Path,
    pub deadline: Duration,
    pub cpus: usize,
    /// Copy the guest's stdout to ours as it comes.
    pub echo: bool,
}

/// A guest that ran its command to the end.
#[derive(Debug)]
pub struct Ran {
    /// The guest command's exit code (vng returns it).
    pub code: i32,
    pub stdout: String,
    pub console: PathBuf,
    pub took: Duration,
    /// Modules of [`MODULES`] that modprobe could not load.
    pub missing_modules: Vec<String>,
}

/// Where the guest script leaves its marks in the out folder.
const BOOTED: &str = "guest-booted";
const MODULES_MISSING: &str = "modules-missing";

impl Boot<'_> {
    /// The guest's script: mark the boot, load the modules (all in one modprobe, then one by one
    /// only those not loaded, to name the missing), let sockets have netpath's 32 MiB NFLOG
    /// receive buffer (a fresh kernel caps it at 208 KiB, which a burst of 280 connections
    /// overflows under TCG; the guest is the VM's own, so this global setting is too), run `command` (a shell line) with
    /// scratch space in the out folder (the repo and /root are read-only in the guest).
    fn script(&self, command: &str) -> String {
        let out = shell_quote(&self.out.display().to_string());
        format!(
            "uname -r > {out}/{BOOTED}\n: > {out}/{MODULES_MISSING}\n\
             modprobe -a -q {mods} 2>/dev/null\n\
             for m in {mods}; do\n  [ -d /sys/module/$m ] || modprobe -q $m 2>/dev/null || echo $m >> {out}/{MODULES_MISSING}\ndone\n\
             echo 33554432 > /proc/sys/net/core/rmem_max\n\
             mkdir -p {out}/tmp {out}/artifacts\nexport TMPDIR={out}/tmp NETPATH_ARTIFACTS={out}/artifacts{slow}\n\
             {command}\n",
            mods = MODULES.join(" "),
            // Steps' deadlines (CNI plugins, netavark: Go programs that call iptables-nft many
            // times) stretch under emulation; expectations do not.
            slow = if self.accel == Accel::Tcg { " NETPATH_SLOWDOWN=10" } else { "" },
        )
    }

    fn command(&self, script: &str) -> Result<Command, String> {
        let rules = self.out.join("udev-rules");
        fs::create_dir_all(&rules).map_err(|e| format!("create {}: {e}", rules.display()))?;
        // An empty 80-drivers.rules over the host's stops udev loading modules in the guest.
        fs::write(rules.join("80-drivers.rules"), "").map_err(|e| format!("write {}: {e}", rules.display()))?;
        let mut c = Command::new(&self.tools.vng);
        c.env("PATH", &self.tools.path)
            .arg("-r")
            .arg(&self.tree.vmlinuz)
            .args(["--verbose", "--force-9p", "--cpus", &self.cpus.to_string(), "--memory", "1G"])
            .arg("--rodir")
            .arg(format!("/etc/udev/rules.d={}", rules.display()))
            .arg("--rwdir")
            .arg(self.out);
        // `-cpu qemu64`: under the default `-cpu max` 5.10 is several times slower at exec.
        if self.accel == Accel::Tcg {
            c.args(["--disable-kvm", "--qemu-opts=-cpu qemu64"]);
        }
        c.arg("--").arg(script);
        Ok(c)
    }

    /// Boot, run `command` in the guest, and power off. An error when the guest does not boot or
    /// finish within the deadline, panics, or vng cannot start it: each with the console log.
    pub fn run(&self, command: &str) -> Result<Ran, String> {
        fs::create_dir_all(self.out).map_err(|e| format!("create {}: {e}", self.out.display()))?;
        let _ = fs::remove_file(self.out.join(BOOTED));
        let console = self.out.join("console.log");
        let stdout_log = self.out.join("stdout.log");
        // In a file: vng passes the command on the kernel command line, which holds 2 KiB (a
        // longer one is cut, and the 6.1 kernel hits a BUG() at boot).
        let script = self.out.join("guest.sh");
        fs::write(&script, self.script(command)).map_err(|e| format!("write {}: {e}", script.display()))?;
        let mut c = self.command(&format!("sh {}", shell_quote(&script.display().to_string())))?;
        // Its own process group: vng forks QEMU, and a deadline must take both.
        c.process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = c.spawn().map_err(|e| format!("cannot start {}: {e}", self.tools.vng.display()))?;
        let _group = Group::register(child.id());
        let out = copy(child.stdout.take(), &stdout_log, self.echo)?;
        let err = copy(child.stderr.take(), &console, false)?;
        let status = wait_group(&mut child, start + self.deadline).map_err(|e| format!("wait for vng: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
        let _ = err.join();
        let took = start.elapsed();
        let log = fs::read_to_string(&console).unwrap_or_default();
        let kernel = &self.tree.release;
        let booted = self.out.join(BOOTED).exists();
        if let Some(line) = panic_line(&log) {
            return Err(format!(
                "kernel {kernel}: the guest panicked: {line}\n(console log: {}; its end:)\n{}",
                console.display(),
                crate::cmd::last_lines(&log, 15)
            ));
        }
        let Some(status) = status else {
            let what = if booted { "its command did not finish" } else { "the guest did not boot" };
            return Err(format!(
                "kernel {kernel}: {what} within {:?} ({} mode; raise the deadline with --timeout), killed\n\
                 (console log: {}; its end:)\n{}",
                self.deadline,
                self.accel,
                console.display(),
                crate::cmd::last_lines(&log, 15)
            ));
        };
        let code = status.code().unwrap_or(-1);
        if !booted {
            return Err(format!(
                "kernel {kernel}: the guest never ran its command (vng exited with {status}); console log {}:\n{}",
                console.display(),
                crate::cmd::last_lines(&log, 15)
            ));
        }
        let missing_modules = fs::read_to_string(self.out.join(MODULES_MISSING))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Ok(Ran { code, stdout, console, took, missing_modules })
    }
}

/// The process groups of the VMs running now, for [`on_signal`]; 0 is a free slot.
static GROUPS: [AtomicI32; 16] = [const { AtomicI32::new(0) }; 16];

/// A VM's process group, registered while it runs: interrupting netpath-vm (Ctrl-C, CI's
/// cancel) must not leave a QEMU behind, and QEMU is in a group of its own.
struct Group(Option<usize>);

impl Group {
    fn register(pid: u32) -> Group {
        static HANDLER: Once = Once::new();
        HANDLER.call_once(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                // SAFETY: on_signal only calls async-signal-safe functions (kill, _exit).
                unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
            }
        });
        let pid = i32::try_from(pid).unwrap_or(0);
        Group(GROUPS.iter().position(|g| g.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst).is_ok()))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            GROUPS[i].store(0, Ordering::SeqCst);
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    for g in &GROUPS {
        let pid = g.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) of the VM's own process group, async-signal-safe.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    }
    // SAFETY: _exit is async-signal-safe; 128 + signal, as a shell reports it.
    unsafe { libc::_exit(128 + sig) };
}

/// The console line that says the kernel panicked (or died before it could), if one does.
fn panic_line(console: &str) -> Option<&str> {
    const SIGNS: [&str; 3] = ["Kernel panic - not syncing", "PANIC: early exception", "kernel BUG at"];
    console.lines().find(|l| SIGNS.iter().any(|s| l.contains(s))).map(str::trim)
}

/// `'text'` for sh.
pub fn shell_quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Copy a pipe into `file` (and to our stdout with `echo`) on a thread; the thread returns all
/// it read. QEMU reopens fds 1 and 2, so they must be pipes or fresh files of their own.
fn copy(pipe: Option<impl Read + Send + 'static>, file: &Path, echo: bool) -> Result<JoinHandle<Vec<u8>>, String> {
    let mut f = File::create(file).map_err(|e| format!("create {}: {e}", file.display()))?;
    Ok(std::thread::spawn(move || {
        let mut all = Vec::new();
        let Some(mut pipe) = pipe else { return all };
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = f.write_all(&buf[..n]);
            if echo {
                let mut o = io::stdout().lock();
                let _ = o.write_all(&buf[..n]);
                let _ = o.flush();
            }
            all.extend_from_slice(&buf[..n]);
        }
        all
    }))
}

/// The exit status, or None after killing the child's whole process group (vng and the QEMU it
/// forked) at the deadline.
fn wait_group(child: &mut std::process::Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            // The group this process made for the child: its id is the child's pid.
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) with a negative pid signals only that process group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_found_in_the_console() {
        let log = "[    1.0] sysrq: Trigger a crash\n[    1.0] Kernel panic - not syncing: sysrq triggered crash\n";
        assert_eq!(panic_line(log), Some("[    1.0] Kernel panic - not syncing: sysrq triggered crash"));
        assert_eq!(panic_line("[ 0.1] Booting\n"), None);
        let early = "Memory KASLR using RDTSC...\nPANIC: early exception 0x06 IP 10:ffffffffb441e1db error 0\n";
        assert!(panic_line(early).is_some_and(|l| l.starts_with("PANIC: early exception")));
    }

    #[test]
    fn shell_quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("/root/.cache/x"), "/root/.cache/x");
        assert_eq!(shell_quote("it's a b"), "'it'\\''s a b'");
        assert_eq!(shell_quote(""), "''");
    }
}
