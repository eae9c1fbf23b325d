"""Shared fixtures: the repository's default station and helpers to vary it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STATION = REPO / "station.yaml"


@pytest.fixture
def station_dict() -> dict:
    """The default station.yaml as a mutable mapping."""
    return copy.deepcopy(yaml.safe_load(DEFAULT_STATION.read_text()))


@pytest.fixture
def write_station(tmp_path):
    """Write a station mapping to a temporary file and return its path."""

    def _write(data: dict, name: str = "station.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return _write
