#!/usr/bin/env bash
# Set up the environment and run the whole test suite (what CI runs through .ci/run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/setup_env.sh
# PostgreSQL on loopback for the distributed Optuna test (Debian package; needs root, skipped otherwise)
if [ -f scripts/start_postgres.sh ] && { [ "$(id -u)" = "0" ] || sudo -n true 2>/dev/null; }; then
    SB3_REINFORCE_POSTGRES_URL="$(bash scripts/start_postgres.sh | tail -n 1)" && export SB3_REINFORCE_POSTGRES_URL \
        || echo "PostgreSQL could not be started: its test will be skipped (and fails under CI=true)"
fi
# Ray (tests/test_ray_cluster.py starts a loopback cluster): no usage statistics sent anywhere
export RAY_USAGE_STATS_ENABLED=0
python -m sb3_reinforce.zoo validate zoo_hyperparams/reinforce.yml
ruff check sb3_reinforce tests examples benchmarks
ruff format --check sb3_reinforce tests examples benchmarks
python -m pytest "$@"
