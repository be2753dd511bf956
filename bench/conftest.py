import pytest

from . import common
from .common import run_metadata


def pytest_configure(config):
    config.addinivalue_line("markers", "energy: records measured GPU energy (a session measures the idle "
                                       "baseline once, before the first test)")


def pytest_collection_finish(session):
    """In a session (bench/gpu_session.sh), the idle power baseline of the energy rows is measured here:
    after collection, before any test has done GPU work in this process."""
    if common.SESSION and any(item.get_closest_marker("energy") for item in session.items):
        common.measure_idle_baseline()


@pytest.fixture(scope="session")
def meta():
    return run_metadata()
