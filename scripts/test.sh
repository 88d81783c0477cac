#!/usr/bin/env bash
# Runs the whole test suite. CR_TEST_DATABASE=postgresql runs it on PostgreSQL
# (CR_TEST_PG_URL, default postgresql+psycopg://postgres@127.0.0.1:5432).
# The browser tests need Debian's Chromium at /usr/bin/chromium (and a Japanese font for
# readable screenshots); as root this installs both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
   && { [ ! -x /usr/bin/chromium ] || ! dpkg -s fonts-ipafont-gothic >/dev/null 2>&1; }; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-ipafont-gothic >/dev/null
fi
.venv/bin/python -m pytest "$@"
