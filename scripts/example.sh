#!/usr/bin/env bash
# Runs the main job on the shipped example: config.example.toml, examples/hrmos_export.tsv,
# SQLite and the file outbox. The export's dates are from June 2025, so the run acts as if it
# were 2025-06-23 11:00 JST (--now); a real installation runs without --now.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/career-relay run --config config.example.toml --now 2025-06-23T11:00:00+09:00 "$@"
echo "Emails written to examples/outbox/:"
ls -1 examples/outbox/
