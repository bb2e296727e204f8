#!/usr/bin/env bash
# Print the interpreter casegrid's virtualenv is built with: CASEGRID_PYTHON if set and
# usable, else CPython 3.13 (python3.13 on the PATH, or the newest 3.13 pyenv installed),
# else python3; exits 1 when even python3 is older than 3.11 or has no venv. 3.13 is chosen
# on purpose: it starts a young collection every 2,000 new objects (3.11 and 3.12 every
# 700), so a serving worker under intake load runs a full collection several times less
# often, and those pauses are intake's p99 (bench/RESULTS.md, issue 20).
set -uo pipefail

usable() { "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

for c in ${CASEGRID_PYTHON:-} python3.13; do
  # A pyenv shim of a version that is not selected fails here, and is passed over.
  if usable "$c"; then command -v "$c"; exit 0; fi
done
pyenv=$(command -v pyenv || true)  # a non-interactive shell may not have pyenv on its PATH
[[ -z "$pyenv" && -x "${PYENV_ROOT:-$HOME/.pyenv}/bin/pyenv" ]] && pyenv="${PYENV_ROOT:-$HOME/.pyenv}/bin/pyenv"
if [[ -n "$pyenv" ]]; then
  for v in $("$pyenv" versions --bare 2>/dev/null | grep -E '^3\.13\.[0-9]+$' | sort -V -r); do
    c="$("$pyenv" root)/versions/$v/bin/python3"
    if usable "$c"; then echo "$c"; exit 0; fi
  done
fi
usable python3 || exit 1
echo python3
