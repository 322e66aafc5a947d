"""The system harness: the whole system over real HTTP, once per topology, one per test module.

Every test of tests/system runs twice: against the all-in-one (``SystemUnderTest``, in a thread
of this process) and against the compose topology as separate processes behind nginx
(``SplitSystem``, ``mailmerger run-split``; marked ``split``). One system per module and
topology, so a module's traffic (the 1,000-message campaign) and emulator state never reach
another's, and never two at once (they share the run's database and broker): pytest finishes a
module's all-in-one before it starts the split one.

``tests/security`` uses the same fixtures (its conftest imports them from here) against the
all-in-one only: it overrides ``topology``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from tests.support import eventually
from tests.system.harness import RunningSystem, SplitSystem, SystemUnderTest, User, connect_gmail, sign_up

# The split system running now, if any: a failing test's report carries the tail of its log.
_running_split: list[SplitSystem] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.failed and _running_split:
        split = _running_split[-1]
        report.sections.append((f"run-split log (tail of {split.log_file})", split.log_tail()))


@pytest.fixture(scope="module", params=["all-in-one", pytest.param("split", marks=pytest.mark.split)])
def topology(request: pytest.FixtureRequest) -> str:
    """Which topology the module's system runs."""
    name: str = request.param
    return name


async def start_all_in_one(service_env: Mapping[str, str]) -> SystemUnderTest:
    sut = SystemUnderTest(service_env)
    sut.start()
    try:
        await eventually(lambda: sut.started, timeout=90, interval=0.1)
        async with httpx.AsyncClient(base_url=sut.base_url) as client:

            async def ready() -> bool:
                return (await client.get("/ready")).status_code == 200

            await eventually(ready, timeout=30, interval=0.2)
    except BaseException:
        sut.stop()
        raise
    return sut


async def start_split(
    service_env: Mapping[str, str], workdir: Path, extra_env: Mapping[str, str] | None = None
) -> SplitSystem:
    """``mailmerger run-split`` up, every process answering its ready path (or the log's tail)."""
    split = SplitSystem(service_env, workdir, extra_env)
    split.start()
    _running_split.append(split)
    try:
        try:
            await eventually(lambda: split.ready, timeout=120, interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"run-split did not get ready: {exc}\n{split.log_tail()}") from None
    except BaseException:
        stop_split(split)
        raise
    return split


def stop_split(split: SplitSystem) -> None:
    try:
        split.stop()
    finally:
        _running_split.remove(split)


@pytest.fixture(scope="module")
async def system(
    topology: str, service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningSystem]:
    """Every service, the dispatcher(s), the sender(s), the emulator and a local S3, over HTTP."""
    if topology == "split":
        split = await start_split(service_env, tmp_path_factory.mktemp("split"))
        try:
            yield split
        finally:
            stop_split(split)
        return
    sut = await start_all_in_one(service_env)
    try:
        yield sut
    finally:
        sut.stop()


@pytest.fixture
async def gateway(system: RunningSystem) -> AsyncIterator[httpx.AsyncClient]:
    """An anonymous client of the gateway."""
    async with httpx.AsyncClient(base_url=system.base_url, timeout=30.0) as client:
        yield client


@pytest.fixture
async def user(system: RunningSystem) -> AsyncIterator[User]:
    """A freshly signed-up user (no Gmail connected)."""
    signed_up = await sign_up(system)
    yield signed_up
    await signed_up.client.aclose()


@pytest.fixture
async def sending_user(system: RunningSystem) -> AsyncIterator[User]:
    """A freshly signed-up user with an emulated Gmail account connected."""
    signed_up = await sign_up(system, "sender")
    await connect_gmail(signed_up, system.base_url)
    yield signed_up
    await signed_up.client.aclose()
