#!/usr/bin/env bash
# Set up the environment and run the whole test suite (what CI runs through .ci/run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/setup_env.sh
# PostgreSQL on loopback for the distributed Optuna test (Debian package; needs root, skipped otherwise)
if [ "$(id -u)" = "0" ] && [ -f scripts/start_postgres.sh ]; then
    bash scripts/start_postgres.sh || echo "PostgreSQL could not be started: its test will be skipped"
fi
ruff check sb3_reinforce tests examples benchmarks
python -m pytest "$@"
