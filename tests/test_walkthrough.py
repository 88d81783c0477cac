"""The README's walk-through, run as a user would: rejection → consent → agency → placement
→ credit → report, through a real `career-relay serve` process on loopback."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_walkthrough_runs_end_to_end(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "walkthrough.py"), "--keep",
                           str(tmp_path)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "2 rejection emails" in out
    assert "consented" in out and "agency B received the candidate (reference cr_" in out
    assert "1 confirmation email" in out
    assert "'accepted': 1" in out
    assert "450,000" in out                       # one placement credit, in yen
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "http://" not in html.replace('http://www.w3.org/2000/svg', '')
