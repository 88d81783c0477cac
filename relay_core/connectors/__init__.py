"""The ATS connectors, imported as `relay_core.connectors.<vendor>`.

They live in the repository's top-level `connectors/` folder, where DESIGN.md puts them. The
wheel installs that folder here, in place of this file (see pyproject.toml), so an installation
has no top-level `connectors` package to clash with another project's; in a checkout this file
points the package at the folder, so the one import name works in both.
"""

from pathlib import Path

__path__ = [str(Path(__file__).resolve().parents[2] / "connectors")]
