from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from faultlab.reports.model import RunModel, build_model, load_journal
from tests.unit.reports.journals import sample_journal


@pytest.fixture
def sample() -> dict[str, Any]:
    return sample_journal()


@pytest.fixture
def journal_path(tmp_path: Path, sample: dict[str, Any]) -> Path:
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(sample))
    return path


@pytest.fixture
def model(journal_path: Path) -> RunModel:
    return build_model(load_journal(journal_path))
