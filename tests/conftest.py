import pytest

from reasoner.api import default_kb


@pytest.fixture(scope="session")
def kb():
    return default_kb()
