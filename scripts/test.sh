#!/usr/bin/env bash
# Runs the whole test suite. CR_TEST_DATABASE=postgresql runs it on PostgreSQL
# (CR_TEST_PG_URL, default postgresql+psycopg://postgres@127.0.0.1:5432).
# The browser tests need Debian's Chromium at /usr/bin/chromium; as root this installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/python -m pytest "$@"
