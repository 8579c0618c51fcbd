#!/usr/bin/env bash
# Installs what the MLflow-on-PostgreSQL test and docs/deploy.md need, when missing: Debian's
# postgresql (server + client) and the psycopg2 driver in the given Python environment.
# Usage: scripts/install_postgres.sh [PYTHON]   (default: .venv/bin/python). Idempotent.
set -euo pipefail
python="${1:-.venv/bin/python}"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "PostgreSQL is missing; install it with: sudo apt-get install -y postgresql" >&2
        exit 1
    fi
    echo "installing postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq postgresql >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
    # Debian starts a system cluster on port 5432; the tests start their own throwaway clusters.
fi
if ! "$python" -c "import psycopg2" >/dev/null 2>&1; then
    echo "installing psycopg2-binary==2.9.13 into $python"
    "$python" -m pip install -q --disable-pip-version-check "psycopg2-binary==2.9.13"
fi
