"""--help explains every setting with the reason written beside it in proxy/config.py."""
import dataclasses

from proxy.config import Settings
from proxy.settings_help import field_help


def test_every_setting_has_its_reason():
    reasons = field_help()
    missing = [f.name for f in dataclasses.fields(Settings) if not reasons.get(f.name)]
    assert missing == []
    assert "backlog of 5" in reasons["max_concurrency"]
    assert reasons["host"].startswith("loopback by default")
