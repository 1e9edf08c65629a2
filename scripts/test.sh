#!/usr/bin/env bash
# Set up and run opbench's test suite on a fresh Debian/Ubuntu machine: the headless Chromium that the HTML
# report's browser test drives (skipped without it, unless OPBENCH_REQUIRE_BROWSER=1), the PostgreSQL server
# the store tests run against (the test session starts a private one with initdb + pg_ctl on a free port, as
# the postgres user when run as root; skipped without it, unless OPBENCH_REQUIRE_POSTGRES=1; or set
# OPBENCH_TEST_POSTGRES_URL to use a server of your own), a virtual environment with the CPU build of PyTorch,
# MLX (CPU), JAX (CPU), psycopg and the test tools, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $SUDO apt-get update -q && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
fi
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $SUDO apt-get update -q && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
fi
python3 -m venv .venv
. .venv/bin/activate
pip install -q torch==2.13.0 -e ".[mlx,jax,postgres,test]"
python -m pytest -q "$@"
