"""A non-editable install must carry the templates and migrations (.ci/run also installs the
wheel into a fresh virtualenv and runs the example with it)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_templates_migrations_and_connectors(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True)
    [wheel] = tmp_path.glob("career_relay-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("relay_core/templates/email/ja/rejection.txt",
                     "relay_core/templates/email/en/rejection.html",
                     "relay_core/migrations/env.py",
                     "relay_core/migrations/versions/0001_initial.py",
                     "connectors/hrmos_export.py",
                     "relay_core/cli.py"):
        assert required in names, required
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "career-relay = relay_core.cli:app" in zipfile.ZipFile(wheel).read(entry).decode()
