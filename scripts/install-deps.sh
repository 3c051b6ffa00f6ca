#!/usr/bin/env bash
# Install what `make run` / `make test` need on a fresh Debian 12 machine that has only Rust,
# gcc, Python and Node. Idempotent: it checks first and installs only what is missing.
#   scripts/install-deps.sh run    -> what building and running yunshi needs
#   scripts/install-deps.sh test   -> plus the browser test tools (chromium, playwright-core)
#   scripts/install-deps.sh bench  -> plus what the benchmarks compare against (Janus)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-test}"

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# Building: str0m's crypto (aws-lc) builds with the C compiler; pkg-config for -sys crates.
pkg_installed pkg-config || need_apt+=(pkg-config)
[ "$what" = "bench" ] && { have janus || need_apt+=(janus); }
if [ "$what" = "test" ] || [ "$what" = "bench" ]; then
  # Browser tests use Debian's Chromium (never a downloaded browser build); loss tests put it
  # in a network namespace (iproute2) and drop packets with nftables.
  have chromium || need_apt+=(chromium)
  have nft || need_apt+=(nftables)
  have ip || need_apt+=(iproute2)
  # The load tool (loadtest/) builds libopus from source with cmake (OpenH264 needs only cc).
  have cmake || need_apt+=(cmake)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if [ "$what" = "test" ] || [ "$what" = "bench" ]; then
  # npm dev dependencies of the browser tests, reinstalled only when the lock file changes.
  stamp=tests/browser/node_modules/.installed-lock
  if [ ! -f "$stamp" ] || ! cmp -s tests/browser/package-lock.json "$stamp"; then
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
    cp tests/browser/package-lock.json "$stamp"
  fi
fi
