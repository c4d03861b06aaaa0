# Shared by the hack/ scripts: the repository root and the Go toolchain on PATH.
# shellcheck shell=bash
ECI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin:/usr/local/bin:/usr/sbin:/sbin
ECI_OUT=$ECI_ROOT/_output
ECI_BIN=$ECI_OUT/bin/eci

eci::need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "$1 needs root (containerd, network links, cgroups): run it as root, e.g. sudo make ${2:-test}" >&2
    exit 1
  fi
}
