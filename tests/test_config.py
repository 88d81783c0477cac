from pathlib import Path

import pytest

from relay_core.config import load_config, parse_config
from relay_core.errors import ConfigError, SecretError
from relay_core.secrets import SecretRef

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_example_is_valid_and_resolves_paths_next_to_it():
    config = load_config(ROOT / "config.example.toml")
    assert config.sources[0].type == "hrmos_export"
    assert config.store_url == f"sqlite:///{ROOT / 'examples' / 'career-relay.db'}"
    assert config.path(config.mail.outbox_dir) == ROOT / "examples" / "outbox"


def test_embedded_defaults():
    config = parse_config({}, Path("/srv/relay"))
    assert config.store_url == "sqlite:////srv/relay/career-relay.db"
    assert config.mail.transport == "file"
    assert config.schedule.deadline_business_days == 3
    assert config.eligibility.max_age_days == 14


@pytest.mark.parametrize("data, key", [
    ({"mail": {"smtp": {"password": "hunter2"}}}, "mail.smtp.password"),
    ({"relay": {"signing_key": "abc"}}, "relay.signing_key"),
    ({"agencies": [{"id": "a"}, {"id": "b", "secret": "plain"}]}, "agencies[1].secret"),
])
def test_plaintext_secret_refused_with_key_path_and_how_to_store_it(data, key):
    with pytest.raises(ConfigError) as err:
        parse_config(data, Path("."))
    assert err.value.key == key
    assert "career-relay secrets set" in str(err.value)
    assert "hunter2" not in str(err.value) and "plain" not in str(err.value)


@pytest.mark.parametrize("data, key, words", [
    ({"company": {"nmae": "x"}}, "company.nmae", "unknown key"),
    ({"schedule": {"business_hours": "9-5"}}, "schedule.business_hours", "HH:MM-HH:MM"),
    ({"schedule": {"holidays": "XX"}}, "schedule.holidays", "ISO code"),
    ({"company": {"timezone": "Tokyo"}}, "company.timezone", "IANA"),
    ({"sources": [{"name": "A B", "type": "x"}]}, "sources[0].name", "lower-case"),
    ({"mail": {"transport": "pigeon"}}, "mail.transport", "'file' or 'smtp'"),
    # The keys of issue 11:
    ({"mail": {"smtp": {"max_per_day": -1}}}, "mail.smtp.max_per_day", "greater than"),
    ({"mail": {"smtp": {"max_per_day": "lots"}}}, "mail.smtp.max_per_day", "integer"),
    ({"retention": {"purge_daily": "sometimes"}}, "retention.purge_daily", "boolean"),
    ({"agencies": [{"id": "a", "retention": ["2y"]}]}, "agencies[0].retention", "string"),
    ({"ledger": {"rule": "per_placement", "legal_review": {"reviewed_on": "2025-06-01",
                                                           "document": "d"}}},
     "ledger.legal_review.reviewer", "who reviewed"),
])
def test_errors_name_the_key_and_the_fix(data, key, words):
    with pytest.raises(ConfigError) as err:
        parse_config(data, Path("."))
    assert err.value.key == key
    assert words in str(err.value)


def test_duplicate_source_names_refused():
    with pytest.raises(ConfigError, match=r"sources\[1\]\.name"):
        parse_config({"sources": [{"name": "a", "type": "x"}, {"name": "a", "type": "y"}]},
                     Path("."))


def test_unknown_source_type_names_the_choices(tmp_path):
    from relay_core.contract.registry import build_connectors

    config = parse_config({"sources": [{"name": "a", "type": "workday"}]}, tmp_path)
    with pytest.raises(ConfigError, match=r"sources\[0\]\.type.*hrmos_export"):
        build_connectors(config)


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="career-relay init"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[company\nname=1", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_env_secret_resolves_and_missing_env_is_explained(monkeypatch):
    ref = SecretRef.parse("mail.smtp.password", "env:CR_TEST_SECRET")
    monkeypatch.setenv("CR_TEST_SECRET", "s3cret")
    assert ref.resolve().get_secret_value() == "s3cret"
    assert "s3cret" not in repr(ref.resolve())
    monkeypatch.delenv("CR_TEST_SECRET")
    with pytest.raises(SecretError, match="CR_TEST_SECRET is not set"):
        ref.resolve()


def test_keyring_without_backend_points_to_env(monkeypatch):
    import keyring
    from keyring.backends import fail

    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())
    ref = SecretRef.parse("relay.signing_key", "keyring:career-relay/signing-key")
    with pytest.raises(SecretError, match="no usable keyring backend.*env:"):
        ref.resolve()


def test_keyring_round_trip(monkeypatch):
    import keyring
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1
        store: dict = {}

        def get_password(self, service, username):
            return self.store.get((service, username))

        def set_password(self, service, username, password):
            self.store[(service, username)] = password

        def delete_password(self, service, username):
            self.store.pop((service, username), None)

    monkeypatch.setattr(keyring, "get_keyring", lambda: Memory())
    monkeypatch.setattr(keyring, "get_password", Memory().get_password)
    monkeypatch.setattr(keyring, "set_password", Memory().set_password)
    from relay_core.secrets import keyring_set

    keyring_set("career-relay", "smtp", "pw")
    assert SecretRef.parse("k", "keyring:career-relay/smtp").resolve().get_secret_value() == "pw"


def commented_blocks(text: str, table: str) -> list[str]:
    """The `# [[table]]` blocks of config.example.toml, uncommented."""
    blocks, current = [], None
    for line in text.splitlines():
        if line.startswith(f"# [[{table}]]"):
            current = [line[2:]]
            blocks.append(current)
        elif current is not None and line.startswith("# ") and "=" in line.split("#")[1]:
            current.append(line[2:])
        else:
            current = None
    return ["\n".join(b) for b in blocks]


def test_every_commented_source_block_in_the_example_is_valid(tmp_path):
    import tomllib

    from relay_core.contract.registry import build_connectors

    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    blocks = commented_blocks(text, "sources")
    assert blocks, "config.example.toml shows no commented source blocks"
    for block in blocks:
        config = parse_config(tomllib.loads(block), tmp_path)
        assert list(build_connectors(config))
