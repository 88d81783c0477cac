"""The connector contract: everything a module under `connectors/` may import from the core.

A connector sees this package, `relay_core.models` (the event it produces) and
`relay_core.errors` (what it raises), and nothing else of the core (the configuration types
are re-exported here for its signatures); the core, in turn, never
imports a vendor module except through `registry`, by the name a configured source gives.
"""

from relay_core import __version__ as VERSION
from relay_core.config import Config, SourceConfig
from relay_core.contract.base import (
    ApplicationStatus,
    CheckResult,
    Connector,
    ConnectorSettings,
    Mode,
    Page,
    Standing,
    WebhookResult,
    WebhookSettings,
    header,
    require,
    signature_matches,
)
from relay_core.contract.times import parse_retry_after, parse_time, read_sheet_time, read_time
from relay_core.contract.values import clean_text, iso_utc, zone_name
from relay_core.secrets import SecretRef, secret_field

__all__ = [
    "VERSION", "ApplicationStatus", "CheckResult", "Config", "Connector", "ConnectorSettings",
    "Mode", "SourceConfig",
    "Page", "SecretRef", "Standing", "WebhookResult", "WebhookSettings", "clean_text", "header",
    "iso_utc", "parse_retry_after", "parse_time", "read_sheet_time", "read_time", "require",
    "secret_field", "signature_matches", "zone_name",
]
