"""A non-editable install must carry the templates and migrations (.ci/run also installs the
wheel into a fresh virtualenv and runs the example with it)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_templates_migrations_and_connectors_under_relay_core(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True)
    [wheel] = tmp_path.glob("career_relay-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("relay_core/templates/email/ja/rejection.txt",
                     "relay_core/templates/email/en/rejection.html",
                     "relay_core/templates/report/report.html",
                     "relay_core/templates/agency/handoff.txt",
                     "relay_core/templates/agency/message.html",
                     "relay_core/migrations/env.py",
                     "relay_core/migrations/versions/0001_initial.py",
                     "relay_core/connectors/hrmos_export.py",
                     "relay_core/commands/cli.py",
                     "relay_core/templates/admin/admin.css",
                     "relay_core/migrations/versions/0004_console.py",
                     # `career-relay init --example` for a pip user
                     "relay_core/config.example.toml",
                     "relay_core/examples/hrmos_export.tsv"):
        assert required in names, required
    # Only the project's own import name at the top level: no generic `connectors` package.
    assert {n.split("/")[0] for n in names if not n.startswith("career_relay-")} == {"relay_core"}
    # The wheel's relay_core/connectors is the folder itself, not the checkout's pointer file.
    init = zipfile.ZipFile(wheel).read("relay_core/connectors/__init__.py").decode()
    assert "__path__" not in init
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    script = zipfile.ZipFile(wheel).read(entry).decode()
    assert "career-relay = relay_core.commands.cli:app" in script
