#!/usr/bin/env bash
# Set up the environment, train REINFORCE on CartPole-v1 and evaluate it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/setup_env.sh
python examples/cartpole.py "$@"
