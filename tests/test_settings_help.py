"""--help explains every setting with the reason written beside it in proxy/config.py."""
import argparse
import dataclasses
import re

from proxy.cli import add_proxy_arguments
from proxy.config import Settings
from proxy.settings_help import field_help


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)  # argparse re-wraps help text, also at hyphens


def test_every_setting_has_its_reason():
    reasons = field_help()
    missing = [f.name for f in dataclasses.fields(Settings) if not reasons.get(f.name)]
    assert missing == []


def test_help_shows_each_settings_reason_as_written_beside_it():
    parser = argparse.ArgumentParser()
    add_proxy_arguments(parser)
    shown = _squeezed(parser.format_help())
    assert [name for name, why in field_help().items() if _squeezed(why) not in shown] == []
