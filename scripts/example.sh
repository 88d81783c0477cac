#!/usr/bin/env bash
# Runs the main job on the shipped example: config.example.toml, examples/hrmos_export.tsv,
# SQLite and the file outbox. The export's dates are from June 2025, so the run acts as if it
# were 2025-06-23 11:00 JST (--now); a real installation runs without --now. The first run
# records the installation and skips what was rejected before it (a new installation never
# mails the backlog by itself); `backfill --since` shows those rejections and opts them in.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
NOW=2025-06-23T11:00:00+09:00
.venv/bin/career-relay run --config config.example.toml --now "$NOW" "$@"
.venv/bin/career-relay backfill --config config.example.toml --since 2025-06-01 --yes --now "$NOW"
.venv/bin/career-relay run --config config.example.toml --now "$NOW" "$@"
echo "Emails written to examples/outbox/:"
ls -1 examples/outbox/
