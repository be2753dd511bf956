import pytest

from .common import run_metadata


@pytest.fixture(scope="session")
def meta():
    return run_metadata()
