#!/usr/bin/env bash
# Installs what netpath-vm needs on Debian 12 (run as root); safe to run again.
# Host packages: QEMU boots the guest; without udev the guest's stdout is lost (vng exits 255),
# without busybox-static there is no initramfs (Debian kernels need one for 9p/virtio), without
# kmod there is no depmod/modprobe. virtme-ng (`vng`) goes into a venv this project owns, never
# into the system's Python.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "vm/install-deps: run as root (apt-get needs root; the VM tests need CAP_NET_ADMIN in the guest)" >&2
  exit 1
fi

# debian-archive-keyring: the private apt configuration checks Debian's signatures with it
# (preinstalled on Debian, not on Ubuntu runners).
packages=(qemu-system-x86 kmod busybox-static udev python3-venv dpkg debian-archive-keyring)
# shellcheck source=/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/../harness/apt-install.sh"
apt_install_missing vm/install-deps "${packages[@]}"

# The venv netpath-vm looks for first (see vm/src/tools.rs); NETPATH_VM_VENV moves it.
venv="${NETPATH_VM_VENV:-$HOME/.cache/netpath/venv}"
vng_version=1.42
if ! "$venv/bin/vng" --version 2>/dev/null | grep -q "$vng_version"; then
  echo "vm/install-deps: installing virtme-ng $vng_version into $venv"
  # Debian's own python3 (>= 3.10, as virtme-ng needs), whatever python3 is first on PATH.
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "virtme-ng==$vng_version"
fi
