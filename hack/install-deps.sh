#!/usr/bin/env bash
# Installs what eci and its test bed need on a Debian 12 machine, and only what is
# missing: runc and crun, the CNI plugins, iptables, nftables, iproute2, busybox-static (the test
# images are built from it), util-linux (unshare, nsenter, mount) and containerd.
#
# containerd is built from the Go module proxy at CONTAINERD_VERSION (see
# docs/dependencies.md for why 2.x and not Debian's 1.6) into $CONTAINERD_BIN_DIR.
# Idempotent: a second run changes nothing and takes well under a second.
# Must run as root (it calls apt-get and installs into /usr/local/bin).
set -euo pipefail

CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
CONTAINERD_BIN_DIR=${CONTAINERD_BIN_DIR:-/usr/local/bin}

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: must run as root (it installs Debian packages); try: sudo $0" >&2
  exit 1
fi

# Debian package -> a file it installs; a package is installed only when its file is absent.
declare -A pkgs=(
  [runc]=/usr/sbin/runc
  [crun]=/usr/bin/crun
  [containernetworking-plugins]=/usr/lib/cni/bridge
  [iptables]=/usr/sbin/iptables
  [iproute2]=/usr/sbin/ip
  [nftables]=/usr/sbin/nft
  [busybox-static]=/bin/busybox
  [util-linux]=/usr/bin/unshare
  [mount]=/usr/bin/mount
  [kmod]=/usr/sbin/modprobe
  [ca-certificates]=/etc/ssl/certs/ca-certificates.crt
  [chromium]=/usr/bin/chromium
)
missing=()
for p in "${!pkgs[@]}"; do
  [ -e "${pkgs[$p]}" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine has no package lists yet; update once, then install.
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/eci-apt.log 2>&1; then
    apt-get update >/tmp/eci-apt.log 2>&1
    apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/eci-apt.log 2>&1 || {
      cat /tmp/eci-apt.log >&2; echo "install-deps: apt-get install failed" >&2; exit 1; }
  fi
fi

have=$("$CONTAINERD_BIN_DIR/containerd" --version 2>/dev/null | awk '{print $3}' || true)
if [ "$have" != "$CONTAINERD_VERSION" ] || [ ! -x "$CONTAINERD_BIN_DIR/containerd-shim-runc-v2" ]; then
  echo "install-deps: building containerd $CONTAINERD_VERSION into $CONTAINERD_BIN_DIR (about 80 s)"
  mod=github.com/containerd/containerd/v2
  pkg="github.com/containerd/containerd/v2/version"
  GOBIN=$CONTAINERD_BIN_DIR CGO_ENABLED=0 GOFLAGS= go install \
    -tags "urfave_cli_no_docs no_btrfs" \
    -ldflags "-s -w -X $pkg.Version=$CONTAINERD_VERSION -X $pkg.Package=$mod" \
    "$mod/cmd/containerd@$CONTAINERD_VERSION" \
    "$mod/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "$mod/cmd/ctr@$CONTAINERD_VERSION"
fi
echo "install-deps: ok (containerd $("$CONTAINERD_BIN_DIR/containerd" --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'))"
