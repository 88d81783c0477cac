import pytest

from tests.handoff.support import SECRET


@pytest.fixture(autouse=True)
def agency_secret(monkeypatch):
    monkeypatch.setenv("CR_TEST_AGENCY_SECRET", SECRET)
