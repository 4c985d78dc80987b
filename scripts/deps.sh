#!/usr/bin/env bash
# Installs the Debian packages the test universe needs, when root; otherwise
# says what is missing. Go modules come through `go` itself.
set -euo pipefail
need=()
command -v unbound >/dev/null 2>&1 || [ -x /usr/sbin/unbound ] || need+=(unbound)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need+=(nftables)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing ${need[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The package may start a system resolver; the universe runs its own.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now unbound >/dev/null 2>&1 || true; fi
else
  echo "deps: missing Debian packages: ${need[*]}" >&2
  echo "deps: run 'sudo apt-get install ${need[*]}' (or run make as root), then retry" >&2
  exit 1
fi
