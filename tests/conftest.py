from __future__ import annotations

from pathlib import Path

import pytest

from .programme import Programme


@pytest.fixture
def programme(tmp_path: Path) -> Programme:
    """A fresh programme with the test mentor directory and rules, at 2026-12-01 15:00 UTC."""
    return Programme(tmp_path)
