"""Shared plumbing for the connector tests: recorded HTTP only (record mode "none", so CI
never touches a network), one cassette folder per test module, credentials filtered."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def vcr_config():
    # The TestClient's own requests go to http://testserver in-process: vcr leaves them alone.
    return {"record_mode": "none", "filter_headers": [("authorization", "<filtered>")],
            "ignore_hosts": ["testserver"]}


@pytest.fixture(scope="module")
def vcr_cassette_dir(request):
    module = request.module
    return str(Path(module.__file__).parent / "cassettes" / module.__name__.rsplit(".", 1)[-1])


@pytest.fixture
def vcr_cassette_name(request):
    """`@pytest.mark.vcr("name.yaml")` names the cassette (several tests share one)."""
    marker = request.node.get_closest_marker("vcr")
    return marker.args[0] if marker and marker.args else f"{request.node.name}.yaml"
