"""Security tests drive the same running system as tests/system."""

from __future__ import annotations

from tests.system.conftest import gateway, sending_user, system, user

__all__ = ["gateway", "sending_user", "system", "user"]
