#!/usr/bin/env bash
# Start casegrid for a demo: database (embedded unless DATABASE_URL is set), sample city and
# a synthetic year of complaints (first time only), a dispatcher API token and one demo
# account per role (printed with their passwords), then the notification worker
# (reminders, webhook/SMS/email deliveries) beside the server.
set -euo pipefail
cd "$(dirname "$0")/.."
CG=.venv/bin/casegrid
$CG db start
$CG sample load --if-empty
$CG demo-token
$CG demo-accounts
$CG worker &
WORKER=$!
trap 'kill "$WORKER" 2>/dev/null || true' EXIT
$CG serve
