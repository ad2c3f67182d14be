//! Debian's packaged kernels: named by alias, fetched through apt with a private configuration
//! (its own sources, lists and cache, so the host's apt and /boot, /lib/modules stay untouched),
//! unpacked with `dpkg-deb -x` into the kernel cache.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cmd;

/// apt-get update of ten suites, and a kernel download (~100 MiB), on a slow mirror.
const APT_TIMEOUT: Duration = Duration::from_secs(900);
const UNPACK_TIMEOUT: Duration = Duration::from_secs(300);
/// Lists older than this are refreshed before a fetch: security updates replace the kernels of
/// the previous ABI, whose packages then vanish from the mirror.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The suites the aliases come from: 5.10 (bullseye), 6.1 (bookworm), 6.12 (trixie), 7.x (sid).
const SUITES: [(&str, &str); 10] = [
    ("debian", "bullseye"),
    ("debian-security", "bullseye-security"),
    ("debian", "bookworm"),
    ("debian", "bookworm-updates"),
    ("debian-security", "bookworm-security"),
    ("debian", "bookworm-backports"),
    ("debian", "trixie"),
    ("debian-security", "trixie-security"),
    ("debian", "forky"),
    ("debian", "sid"),
];

/// The series docs/matrix.md and the matrix name; any `X.Y` that apt offers works too.
pub const KNOWN_SERIES: [&str; 4] = ["5.10", "6.1", "6.12", "7.2"];

/// Which kernel: the host's own, the newest of a series, or one Debian release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alias {
    Host,
    Series(u32, u32),
    Release(String),
}

impl std::str::FromStr for Alias {
    type Err = String;
    fn from_str(s: &str) -> Result<Alias, String> {
        if s == "host" {
            return Ok(Alias::Host);
        }
        if let Some((a, b)) = s.split_once('.')
            && let (Ok(major), Ok(minor)) = (a.parse(), b.parse())
        {
            return Ok(Alias::Series(major, minor));
        }
        if release_key(s).is_some() {
            return Ok(Alias::Release(s.to_string()));
        }
        Err(format!(
            "unknown kernel `{s}`: give `host`, a series ({}) or a Debian release such as 6.1.0-57-amd64 \
             (`netpath-vm kernels` lists them)",
            KNOWN_SERIES.join(", ")
        ))
    }
}

impl fmt::Display for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Alias::Host => f.write_str("host"),
            Alias::Series(a, b) => write!(f, "{a}.{b}"),
            Alias::Release(r) => f.write_str(r),
        }
    }
}

impl Alias {
    fn matches(&self, release: &str) -> bool {
        match (self, release_key(release)) {
            (Alias::Series(a, b), Some(key)) => key[..2] == [*a, *b],
            (Alias::Release(r), Some(_)) => r == release,
            _ => false,
        }
    }
}

/// The numbers of a plain amd64 Debian release, for ordering (`6.1.0-57-amd64` -> [6, 1, 0, 57],
/// `7.2.13+deb14-amd64` -> [7, 2, 13, 14]); `None` for other flavours (cloud, rt) and names.
pub fn release_key(release: &str) -> Option<Vec<u32>> {
    let core = release.strip_suffix("-amd64")?.replacen("+deb", "-", 1);
    let key: Option<Vec<u32>> = core.split(['.', '-']).map(|n| n.parse().ok()).collect();
    key.filter(|k| k.len() >= 3)
}

/// A kernel package set apt offers: `linux-image-REL`, or on 7.x `linux-binary-REL` with
/// `linux-modules-REL` and `linux-base-REL` (there `linux-image-REL` is a meta package).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub release: String,
    pub packages: Vec<String>,
}

/// An unpacked kernel in the cache.
#[derive(Debug, Clone)]
pub struct Tree {
    pub release: String,
    pub dir: PathBuf,
    pub vmlinuz: PathBuf,
    /// `package=version` of what was unpacked.
    pub packages: Vec<String>,
}

impl Tree {
    /// The kernel's config as Debian ships it beside the image.
    pub fn config(&self) -> Option<PathBuf> {
        let r = &self.release;
        [format!("boot/config-{r}"), format!("usr/lib/modules/{r}/config"), format!("lib/modules/{r}/config")]
            .into_iter()
            .map(|p| self.dir.join(p))
            .find(|p| p.is_file())
    }

    fn open(dir: &Path) -> Option<Tree> {
        let release = dir.file_name()?.to_str()?.to_string();
        let stamp = fs::read_to_string(dir.join(COMPLETE)).ok()?;
        let vmlinuz = [format!("boot/vmlinuz-{release}"), format!("usr/lib/modules/{release}/vmlinuz")]
            .into_iter()
            .map(|p| dir.join(p))
            .find(|p| p.is_file())?;
        let packages = stamp.lines().map(str::to_string).collect();
        Some(Tree { release, dir: dir.to_path_buf(), vmlinuz, packages })
    }
}

/// Written last into an unpacked tree: a tree without it is a fetch that was interrupted.
const COMPLETE: &str = ".netpath-complete";

/// The kernel cache: `$NETPATH_VM_CACHE`, default `~/.cache/netpath/kernels`.
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    pub fn from_env() -> Cache {
        let root = std::env::var_os("NETPATH_VM_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| "/root".into());
            home.join(".cache/netpath/kernels")
        });
        Cache { root }
    }

    fn apt_dir(&self) -> PathBuf {
        self.root.join("apt")
    }

    /// The private apt configuration: nothing of the host's sources, preferences or package
    /// status is read, nothing is written outside the cache.
    fn apt_config(&self) -> Result<PathBuf, String> {
        let apt = self.apt_dir();
        for sub in ["sources.list.d", "preferences.d", "lists/partial", "cache/archives/partial"] {
            let d = apt.join(sub);
            fs::create_dir_all(&d).map_err(|e| format!("create {}: {e}", d.display()))?;
        }
        let mirror = std::env::var("NETPATH_VM_MIRROR").unwrap_or_else(|_| "http://deb.debian.org".into());
        let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
        let sources: String = SUITES
            .iter()
            .map(|(archive, suite)| format!("deb [signed-by={keyring}] {mirror}/{archive} {suite} main\n"))
            .collect();
        let d = apt.display();
        // The forky and sid Release files on the mirror are past their Valid-Until.
        let conf = format!(
            "Dir::Etc::sourcelist \"{d}/sources.list\";\n\
             Dir::Etc::sourceparts \"{d}/sources.list.d\";\n\
             Dir::Etc::preferences \"{d}/preferences\";\n\
             Dir::Etc::preferencesparts \"{d}/preferences.d\";\n\
             Dir::State::Lists \"{d}/lists\";\n\
             Dir::State::status \"{d}/status\";\n\
             Dir::Cache \"{d}/cache\";\n\
             APT::Architectures {{ \"amd64\"; }};\n\
             APT::Sandbox::User \"root\";\n\
             Acquire::Check-Valid-Until \"false\";\n\
             Acquire::Languages \"none\";\n"
        );
        let write = |name: &str, text: &str| {
            let p = apt.join(name);
            fs::write(&p, text).map_err(|e| format!("write {}: {e}", p.display()))
        };
        write("sources.list", &sources)?;
        write("status", "")?;
        write("apt.conf", &conf)?;
        Ok(apt.join("apt.conf"))
    }

    fn apt(&self, program: &str, args: &[&str], dir: Option<&Path>) -> Result<String, String> {
        let conf = self.apt_config()?;
        let mut c = Command::new(program);
        c.args(args).env("APT_CONFIG", conf).env("DEBIAN_FRONTEND", "noninteractive");
        if let Some(d) = dir {
            c.current_dir(d);
        }
        cmd::output(c, &cmd::line(program, args), APT_TIMEOUT, " (apt-get comes with Debian: package apt)")
    }

    fn lists_age(&self) -> Option<Duration> {
        let lists = self.apt_dir().join("lists");
        let newest = fs::read_dir(&lists)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with("Release"))
            .filter_map(|e| e.metadata().ok()?.modified().ok())
            .max()?;
        newest.elapsed().ok()
    }

    /// Refresh the private package lists when they are missing, stale, or `force`d.
    pub fn update(&self, force: bool) -> Result<(), String> {
        if !force && self.lists_age().is_some_and(|age| age < LISTS_MAX_AGE) {
            return Ok(());
        }
        eprintln!("netpath-vm: apt-get update (private lists in {})", self.apt_dir().display());
        self.apt("apt-get", &["-q", "update"], None)
            .map(drop)
            .map_err(|e| format!("{e}\n(is the Debian mirror reachable? NETPATH_VM_MIRROR overrides it)"))
    }

    /// What apt offers for `alias`, newest first.
    pub fn offers(&self, alias: &Alias) -> Result<Vec<Offer>, String> {
        let names = self.apt("apt-cache", &["pkgnames", "linux-"], None)?;
        Ok(offers_from_names(&names, alias))
    }

    /// The cached tree of `alias` (the newest one cached for a series).
    pub fn cached(&self, alias: &Alias) -> Option<Tree> {
        self.trees().into_iter().find(|t| alias.matches(&t.release))
    }

    /// Every complete tree in the cache, newest first.
    pub fn trees(&self) -> Vec<Tree> {
        let mut trees: Vec<Tree> =
            fs::read_dir(&self.root).into_iter().flatten().filter_map(|e| Tree::open(&e.ok()?.path())).collect();
        trees.sort_by_key(|t| std::cmp::Reverse(release_key(&t.release)));
        trees
    }

    /// The kernel of `alias`, fetched and unpacked unless the cache has it.
    pub fn fetch(&self, alias: &Alias) -> Result<Tree, String> {
        if let Some(t) = self.cached(alias) {
            return Ok(t);
        }
        self.update(false)?;
        let mut offers = self.offers(alias)?;
        if offers.is_empty() {
            // The lists may predate the kernel asked for.
            self.update(true)?;
            offers = self.offers(alias)?;
        }
        let Some(offer) = offers.into_iter().next() else {
            return Err(no_offer(alias));
        };
        self.unpack(&offer)
    }

    /// The newest release apt offers for `alias` (lists refreshed when stale), without fetching:
    /// what CI keys its kernel cache on.
    pub fn resolve(&self, alias: &Alias) -> Result<String, String> {
        if let Alias::Release(r) = alias {
            return Ok(r.clone());
        }
        self.update(false)?;
        let mut offers = self.offers(alias)?;
        if offers.is_empty() {
            self.update(true)?;
            offers = self.offers(alias)?;
        }
        offers.into_iter().next().map(|o| o.release).ok_or_else(|| no_offer(alias))
    }

    /// The newest kernel of `alias` that apt offers, fetched unless the cache has that very
    /// release: a cache restored from an older run (CI's) does not pin the series to its kernel.
    pub fn fetch_newest(&self, alias: &Alias) -> Result<Tree, String> {
        let release = self.resolve(alias)?;
        if let Some(t) = self.trees().into_iter().find(|t| t.release == release) {
            return Ok(t);
        }
        self.fetch(&Alias::Release(release))
    }

    fn unpack(&self, offer: &Offer) -> Result<Tree, String> {
        let scratch = self.root.join(format!(".fetch-{}-{}", offer.release, std::process::id()));
        let tree = scratch.join(&offer.release);
        let debs = scratch.join("debs");
        fs::create_dir_all(&debs).map_err(|e| format!("create {}: {e}", debs.display()))?;
        let result = (|| {
            eprintln!("netpath-vm: downloading {}", offer.packages.join(" "));
            let mut args = vec!["-q", "download"];
            args.extend(offer.packages.iter().map(String::as_str));
            self.apt("apt-get", &args, Some(&debs))?;
            let mut stamp = String::new();
            for entry in fs::read_dir(&debs).map_err(|e| format!("read {}: {e}", debs.display()))? {
                let deb = entry.map_err(|e| e.to_string())?.path();
                let d = deb.display().to_string();
                let t = tree.display().to_string();
                let mut c = Command::new("dpkg-deb");
                c.args(["-x", &d, &t]);
                cmd::output(c, &format!("dpkg-deb -x {d} {t}"), UNPACK_TIMEOUT, "")?;
                let mut c = Command::new("dpkg-deb");
                c.args(["-f", &d, "Package", "Version"]);
                let fields = cmd::output(c, &format!("dpkg-deb -f {d}"), UNPACK_TIMEOUT, "")?;
                let field = |k: &str| fields.lines().find_map(|l| l.strip_prefix(k)).unwrap_or("?").trim().to_string();
                stamp.push_str(&format!("{}={}\n", field("Package:"), field("Version:")));
            }
            fs::write(tree.join(COMPLETE), stamp).map_err(|e| e.to_string())?;
            let dest = self.root.join(&offer.release);
            let _ = fs::remove_dir_all(&dest);
            fs::rename(&tree, &dest).map_err(|e| format!("move {} to {}: {e}", tree.display(), dest.display()))?;
            Tree::open(&dest).ok_or_else(|| {
                format!("{}: unpacked {}, but found no vmlinuz in it", dest.display(), offer.packages.join(" "))
            })
        })();
        let _ = fs::remove_dir_all(&scratch);
        result
    }
}

fn no_offer(alias: &Alias) -> String {
    format!(
        "kernel {alias}: apt offers no linux-image-*/linux-binary-* amd64 package for it in {} \
         (`netpath-vm kernels` lists what it offers)",
        SUITES.iter().map(|s| s.1).collect::<Vec<_>>().join(", ")
    )
}

/// The offers among apt's package names for `alias`, newest first.
fn offers_from_names(names: &str, alias: &Alias) -> Vec<Offer> {
    let names: Vec<&str> = names.lines().map(str::trim).collect();
    let mut releases: Vec<&str> = names
        .iter()
        .filter_map(|n| n.strip_prefix("linux-image-").or_else(|| n.strip_prefix("linux-binary-")))
        .filter(|r| alias.matches(r))
        .collect();
    releases.sort_by_key(|r| std::cmp::Reverse(release_key(r)));
    releases.dedup();
    releases
        .into_iter()
        .map(|r| {
            let binary = format!("linux-binary-{r}");
            let packages = if names.contains(&binary.as_str()) {
                // linux-base has the config and modules.builtin (without which modprobe of a
                // built-in module fails).
                let base = format!("linux-base-{r}");
                let with_base = names.contains(&base.as_str()).then_some(base);
                [binary, format!("linux-modules-{r}")].into_iter().chain(with_base).collect()
            } else {
                vec![format!("linux-image-{r}")]
            };
            Offer { release: r.to_string(), packages }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_parse_and_bad_ones_say_what_is_accepted() {
        assert_eq!("host".parse(), Ok(Alias::Host));
        assert_eq!("6.12".parse(), Ok(Alias::Series(6, 12)));
        assert_eq!("6.1.0-57-amd64".parse(), Ok(Alias::Release("6.1.0-57-amd64".into())));
        let e = "linux-6".parse::<Alias>().unwrap_err();
        assert!(e.contains("unknown kernel `linux-6`") && e.contains("5.10, 6.1, 6.12, 7.2"), "{e}");
        assert!("6.1.0-57-cloud-amd64".parse::<Alias>().is_err());
    }

    #[test]
    fn offers_are_the_plain_amd64_kernels_of_the_series_newest_first() {
        let names = "linux-image-6.1.0-9-amd64\nlinux-image-6.1.0-57-amd64\nlinux-image-6.1.0-57-cloud-amd64\n\
                     linux-image-6.1.0-57-amd64-dbg\nlinux-image-6.12.118+deb13-amd64\nlinux-image-amd64\n\
                     linux-image-7.2.13+deb14-amd64\nlinux-binary-7.2.13+deb14-amd64\n\
                     linux-modules-7.2.13+deb14-amd64\nlinux-base-7.2.13+deb14-amd64\n";
        let six_one = offers_from_names(names, &Alias::Series(6, 1));
        assert_eq!(six_one.iter().map(|o| o.release.as_str()).collect::<Vec<_>>(), ["6.1.0-57-amd64", "6.1.0-9-amd64"]);
        assert_eq!(six_one[0].packages, ["linux-image-6.1.0-57-amd64"]);
        assert!(offers_from_names(names, &Alias::Series(6, 12))[0].release == "6.12.118+deb13-amd64");
        // 7.x: linux-image-* is a meta package; the image and modules are split.
        let seven = offers_from_names(names, &Alias::Series(7, 2));
        assert_eq!(seven.len(), 1);
        assert_eq!(
            seven[0].packages,
            ["linux-binary-7.2.13+deb14-amd64", "linux-modules-7.2.13+deb14-amd64", "linux-base-7.2.13+deb14-amd64"]
        );
        assert!(offers_from_names(names, &Alias::Series(4, 19)).is_empty());
    }
}
