# Sourced by harness/install-deps.sh and vm/install-deps.sh: install those of the Debian
# packages given that dpkg does not have yet, waiting for another apt run's lock if need be.
# --no-remove: a package the host has in a newer version (from backports, say) is never removed
# or downgraded to make room; apt fails instead and says which one.
apt_install_missing() {
  local label=$1
  shift
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "$label: installing ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
      --no-remove "${missing[@]}"
  fi
}
