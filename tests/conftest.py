"""Shared test setup: real-resource markers and the bundled real BETH sample rows."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
SAMPLES = Path(__file__).parent / "data" / "beth-samples"


def _unavailable(reason: str) -> None:
    """Skip outside CI; in CI a missing real resource is a failure, never a skip."""
    if IN_CI:
        pytest.fail(f"{reason} (CI must run this test for real)")
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") and os.geteuid() != 0:
        _unavailable("needs root (eBPF / raw sockets)")
    if item.get_closest_marker("broker") and shutil.which("nats-server") is None:
        _unavailable("needs the nats-server binary (Debian package nats-server)")


@pytest.fixture(scope="session")
def samples() -> Path:
    """Directory of real BETH rows (first 100 rows of the Kaggle files)."""
    return SAMPLES
