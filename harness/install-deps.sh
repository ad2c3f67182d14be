#!/usr/bin/env bash
# Installs what netpath needs on Debian 12 (run as root); safe to run again.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (netpath needs CAP_NET_ADMIN; apt-get needs root)" >&2
  exit 1
fi

# tcpdump is the shell baseline of `cargo bench` (cases/benches/seed000-experiment.sh).
# wireguard-tools gives `wg`, which configures every WireGuard interface; wireguard-go is the
# userspace WireGuard netpath uses where the kernel has none (CONFIG_WIREGUARD unset).
# clang and libbpf-dev build the drop source's eBPF program (harness/build.rs compiles
# harness/bpf/drops.bpf.c with clang against libbpf's bpf_helpers.h; no bpftool: the kernel types
# it reads are declared in harness/bpf/core.h and relocated at load time).
# containernetworking-plugins (the CNI plugins in /usr/lib/cni), netavark (podman's network
# backend, /usr/lib/podman/netavark), nfacct and ipset: the real tools the bundled scenarios'
# [[step]] entries run. chromium renders the HTML report in cases/tests/html.rs (headless).
packages=(iptables ebtables nftables libpcap-dev pkg-config conntrack iproute2 iputils-ping gcc tcpdump
  wireguard-tools wireguard-go containernetworking-plugins netavark nfacct ipset clang libbpf-dev)
# A browser the HTML test can drive: Debian's chromium, unless one is there already (GitHub's
# Ubuntu images ship google-chrome, and Ubuntu's chromium package is a snap stub).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 &&
  ! command -v google-chrome >/dev/null 2>&1 && ! command -v google-chrome-stable >/dev/null 2>&1; then
  packages+=(chromium)
fi
# shellcheck source=/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"
apt_install_missing install-deps "${packages[@]}"

# Debian 12's own rustc (1.63) is too old for this workspace (edition 2024 needs 1.85). The
# toolchain belongs to the user who builds: under sudo that is SUDO_USER (CI's `runner`, whose
# later steps run cargo without sudo), not root; one toolchain, never a second one for root.
owner="${SUDO_USER:-root}"
[ "$owner" = root ] || id "$owner" >/dev/null 2>&1 || owner=root
owner_home=$(getent passwd "$owner" | cut -d: -f6)
if [ -x "$owner_home/.cargo/bin/cargo" ] || { [ "$owner" = root ] && command -v cargo >/dev/null 2>&1; }; then
  :
else
  echo "install-deps: installing the Rust toolchain with rustup for $owner ($owner_home/.cargo)"
  apt_install_missing install-deps curl ca-certificates
  # No default toolchain: rust-toolchain.toml names the one this workspace builds with, and
  # rustup installs it (with rustfmt and clippy) at the first cargo run in the repository.
  # rustup-init itself from static.rust-lang.org (sh.rustup.rs only serves a script that
  # downloads this same binary, and is not reachable from every CI machine).
  # Named rustup-init: the binary decides what it is by its own name.
  init_dir=$(mktemp -d /tmp/netpath-rustup.XXXXXX)
  init="$init_dir/rustup-init"
  curl --proto '=https' --tlsv1.2 -sSf -o "$init" \
    https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init
  chmod 755 "$init_dir" "$init"
  if [ "$owner" = root ]; then
    "$init" -y --profile minimal --default-toolchain none
  else
    # -H: rustup installs into the user's HOME, not root's.
    sudo -u "$owner" -H "$init" -y --profile minimal --default-toolchain none
  fi
  rm -rf "$init_dir"
fi
