#!/usr/bin/env bash
# Install everything casegrid needs on a Debian/Ubuntu machine, idempotently:
#   system packages (PostgreSQL + PostGIS; for tests also Chromium), a virtualenv, the package.
# Usage: scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

WANT_TEST=0
[[ "${1:-}" == "--test" ]] && WANT_TEST=1

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] %s\033[0m\n' "$*" >&2; exit 1; }

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO="need"; fi
fi

missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# PostgreSQL server, then the PostGIS build for that server's major version.
have_pkg postgresql || missing+=(postgresql)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v npm >/dev/null || missing+=(npm)  # Leaflet assets, served locally (offline intranets)
if [[ $WANT_TEST -eq 1 ]]; then
  have_pkg chromium || missing+=(chromium)
  have_pkg fonts-noto-cjk || missing+=(fonts-noto-cjk)  # Chinese text in browser screenshots
  have_pkg wrk || missing+=(wrk)  # the intake benchmark's load generator (make bench)
  have_pkg nginx || missing+=(nginx)  # tests/test_behind_proxy.py runs deploy/'s nginx site
fi

apt_install() {
  if [[ "$SUDO" == "need" ]]; then
    die "missing system packages: $*. Run as root or with sudo: sudo apt-get install -y $*"
  fi
  say "installing system packages: $*"
  $SUDO apt-get update -qq
  # RUNLEVEL=1: start no service. casegrid runs its own PostgreSQL cluster (.casegrid/), and
  # the tests their own nginx; a system nginx would sit on port 80 for nothing.
  $SUDO env RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

[[ ${#missing[@]} -gt 0 ]] && apt_install "${missing[@]}"

PGVER=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
[[ -n "$PGVER" ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
if [[ ! -f /usr/share/postgresql/$PGVER/extension/postgis.control ]]; then
  apt_install "postgresql-$PGVER-postgis-3"
fi

# CPython 3.13 where the machine has it, else python3 (scripts/pick_python.sh says why).
PYTHON=$(scripts/pick_python.sh) || die "casegrid needs Python 3.11 or newer with venv (found $(python3 --version 2>&1))"

if [[ ! -x .venv/bin/python ]]; then
  say "creating virtualenv .venv with $($PYTHON --version 2>&1) ($PYTHON)"
  "$PYTHON" -m venv .venv
else
  ver() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
  [[ "$(ver .venv/bin/python)" == "$(ver "$PYTHON")" ]] || say "note: .venv has Python \
$(ver .venv/bin/python), scripts/pick_python.sh chooses $(ver "$PYTHON"): remove .venv to rebuild it"
fi
# The exact, hash-checked versions of requirements/*.lock (make lock writes them from
# pyproject.toml), then the project itself without resolving anything: two machines a month
# apart install the same files. The test set contains the run set at the same versions.
STAMP=.venv/.casegrid-installed
LOCK=requirements/run.lock
[[ $WANT_TEST -eq 1 ]] && LOCK=requirements/test.lock
fingerprint() { cat "$1" pyproject.toml | sha256sum | cut -d' ' -f1; }
WANT="$LOCK $(fingerprint "$LOCK")"
HAVE=$(cat $STAMP 2>/dev/null || true)
# A venv holding the test set also serves `make run`, as long as that set is current.
if [[ "$HAVE" != "$WANT" && "$HAVE" != "requirements/test.lock $(fingerprint requirements/test.lock)" ]]; then
  if [[ -x .venv/bin/python3 ]] && ! .venv/bin/python3 scripts/lock.py --check; then
    say "warning: the lock files are older than pyproject.toml; installing the locked versions"
  fi
  say "installing the locked dependencies ($LOCK) into .venv"
  .venv/bin/pip install -q --require-hashes -r "$LOCK"
  .venv/bin/pip install -q --no-deps --no-build-isolation -e .
  echo "$WANT" > $STAMP
fi
# Leaflet and plugin assets, served by casegrid itself (city intranets have no internet).
if [[ -x scripts/fetch_assets.sh ]]; then scripts/fetch_assets.sh; fi
say "ready"
