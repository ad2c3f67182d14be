#!/usr/bin/env bash
# Installs what netpath-vm needs on Debian 12 or Ubuntu (run as root, e.g. `sudo bash
# vm/install-deps.sh`); safe to run again. Never removes or downgrades a package: it installs only
# what is missing, with apt's --no-remove.
# Host packages: QEMU boots the guest; without udev the guest's stdout is lost (vng exits 255),
# without busybox-static there is no initramfs (Debian kernels need one for 9p/virtio), without
# kmod there is no depmod/modprobe. virtme-ng (`vng`) goes into a venv this project owns, never
# into the system's Python, at a fixed path every user finds (netpath-vm runs as root under sudo,
# CI's other steps as the invoking user): /opt/netpath/venv, or NETPATH_VM_VENV.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "vm/install-deps: run as root (apt-get needs root; the VM tests need CAP_NET_ADMIN in the guest)" >&2
  exit 1
fi

# debian-archive-keyring: the private apt configuration checks Debian's signatures with it
# (preinstalled on Debian, not on Ubuntu runners).
packages=(kmod busybox-static udev python3-venv dpkg debian-archive-keyring)
# shellcheck source=/dev/null
source "$(dirname "${BASH_SOURCE[0]}")/../harness/apt-install.sh"
apt_install_missing vm/install-deps "${packages[@]}"

# QEMU: a host that took qemu-utils from bookworm-backports (newer than bookworm's QEMU, which
# it Breaks) would have apt remove it to install bookworm's qemu-system-x86; take QEMU from
# backports too, through a sources folder of this run only (nothing is added to the host's).
if ! dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q "install ok installed"; then
  utils=$(dpkg-query -W -f='${Status} ${Version}' qemu-utils 2>/dev/null | sed -n 's/^install ok installed //p')
  if [[ "$utils" == *bpo12* ]]; then
    echo "vm/install-deps: qemu-utils $utils is from bookworm-backports: installing QEMU from there"
    parts=$(mktemp -d)
    trap 'rm -rf "$parts"' EXIT
    cp /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list "$parts"/ 2>/dev/null || true
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' \
      'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' >"$parts/backports.sources"
    apt-get -o DPkg::Lock::Timeout=600 -o Dir::Etc::SourceParts="$parts" update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -o Dir::Etc::SourceParts="$parts" \
      install -y -qq --no-install-recommends --no-remove -t bookworm-backports qemu-system-x86
  else
    apt_install_missing vm/install-deps qemu-system-x86
  fi
fi

# The venv netpath-vm looks for first (vm/src/guest.rs, Tools::find).
venv="${NETPATH_VM_VENV:-/opt/netpath/venv}"
vng_version=1.42
if ! "$venv/bin/vng" --version 2>/dev/null | grep -q "$vng_version"; then
  echo "vm/install-deps: installing virtme-ng $vng_version into $venv"
  # Debian's own python3 (>= 3.10, as virtme-ng needs), whatever python3 is first on PATH.
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "virtme-ng==$vng_version"
fi
