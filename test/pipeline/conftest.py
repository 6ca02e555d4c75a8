"""Fixtures of the processing-core tests."""

from __future__ import annotations

import pytest
from pipeline_fakes import FakeEncoder


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()
