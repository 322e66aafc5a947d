"""Security tests drive the same running system as tests/system, in the all-in-one topology only.

They reach into the all-in-one (its internal listener, its app objects), so ``topology`` is not
parametrized here as it is in tests/system.
"""

from __future__ import annotations

import pytest

from tests.system.conftest import gateway, sending_user, system, user

__all__ = ["gateway", "sending_user", "system", "topology", "user"]


@pytest.fixture(scope="module")
def topology() -> str:
    return "all-in-one"
