"""The client's public surface is its `__all__`, as httpx checks its own."""

import importlib.metadata
import types

import pytest

import spool_client

pytestmark = pytest.mark.unit


def test_all_public_members_are_exported() -> None:
    public = sorted(
        name
        for name, value in vars(spool_client).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    )
    assert sorted(n for n in spool_client.__all__ if n != "__version__") == public


def test_every_exported_member_comes_from_the_package() -> None:
    for name in spool_client.__all__:
        value = getattr(spool_client, name)
        if name != "__version__":
            assert value.__module__.startswith("spool_client."), name


def test_version_is_the_distribution_version() -> None:
    assert spool_client.__version__ == importlib.metadata.version("spool-client")
