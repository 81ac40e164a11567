"""Fixtures of the format tests."""

from pathlib import Path

import pytest

from tests.formats import node


@pytest.fixture(scope="module")
def ai_sdk() -> Path:
    """The folder whose node_modules holds `ai` at the pinned version (installed if not)."""
    return node.install_ai_sdk()
