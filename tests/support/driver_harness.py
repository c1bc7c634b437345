"""What the driver contract suite needs from each driver: a harness that runs one under test.

A harness owns one driver and the hypervisor behind it (an in-memory fake, libvirt's
``test:///default``, the XAPI double). It makes fresh instances in a given power
state without going through the driver, and reads the hypervisor's own record of an
instance, so a test can tell what the driver did from what it says it did. Only
opening and closing the driver is async; the harness talks to its hypervisor directly.

Adding an implementation to the contract means one ``DriverHarness`` subclass and one
entry in ``tests/integration/test_driver_contract.py``'s ``HARNESSES``. What a driver
may legitimately do differently is declared on the class (``states``,
``starts_suspended``); a contract point it cannot show goes in ``exceptions`` with the
reason, and the test says so when it runs.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Literal, TypeVar

import pytest

from drivers import Driver, PowerState

D = TypeVar("D", bound=Driver)
H = TypeVar("H", bound="DriverHarness[Any]")

OWNER = {"project_id": "ops", "user_id": "operator"}
"""The owner every harness gives the instances it makes (as config or as ``default_owner``)."""

OPERATIONS = ("suspend", "resume", "start", "stop", "reboot", "hard_reboot", "pause", "unpause")
"""The power operations of the ``Driver`` interface; ``hard_reboot`` is ``reboot(hard=True)``."""

CALLS = (*OPERATIONS, "get_instance", "set_boot_block")
"""Every ``Driver`` call that names an instance."""

ContractPoint = Literal["comes_back", "configured_host"]
"""Contract points a driver may be excepted from, with a reason (``DriverHarness.exceptions``)."""


async def perform(driver: Driver, call: str, instance_id: str) -> None:
    """Make the ``Driver`` call named in ``CALLS`` on one instance (``set_boot_block`` places one)."""
    if call == "hard_reboot":
        await driver.reboot(instance_id, hard=True)
    elif call == "set_boot_block":
        await driver.set_boot_block(instance_id, True, "hold")
    else:
        method: Callable[[str], Awaitable[object]] = getattr(driver, call)
        await method(instance_id)


@contextlib.asynccontextmanager
async def running(harness_class: Callable[[], H]) -> AsyncIterator[H]:
    """A new harness, opened for the block and closed after it."""
    harness = harness_class()
    await harness.open()
    try:
        yield harness
    finally:
        await harness.close()


class DriverHarness(abc.ABC, Generic[D]):
    """One driver under test and the hypervisor it talks to (use it through ``running``).

    ``open`` brings the hypervisor up and opens ``driver`` on it; ``close`` closes both.
    Everything else talks to the hypervisor directly, without the driver.
    """

    name: ClassVar[str]
    """The driver's name for ``drivers.create``, and the test id."""
    driver_class: Callable[[Mapping[str, Any]], D]
    """Builds the driver from a config (the driver's class)."""
    states: ClassVar[frozenset[PowerState]]
    """The power states ``make`` can put a fresh instance in."""
    starts_suspended: ClassVar[bool]
    """Whether ``start`` also restores a SUSPENDED instance (the ``Driver`` ABC allows both)."""
    not_found_ids: ClassVar[tuple[str, ...]]
    """Ids every call must answer with ``InstanceNotFound``."""
    unreachable_message: ClassVar[str]
    """A pattern the ``DriverUnavailable`` message of ``unreachable()`` matches."""
    bad_configs: ClassVar[tuple[tuple[Mapping[str, Any], str], ...]]
    """(overrides of ``config()``, a pattern of the ``DriverConfigError`` message) for ``drivers.create``."""
    exceptions: ClassVar[Mapping[ContractPoint, str]] = MappingProxyType({})
    """Contract points this driver cannot show, each with the reason."""
    label: ClassVar[str] = ""
    """The harness's name in test ids when it is not the driver's (two harnesses of one driver)."""

    driver: D
    host: str
    """The ``Instance.host`` the driver must report for instances ``make`` made."""

    def __init__(self) -> None:
        self._made = 0

    async def open(self) -> None:
        """Start the hypervisor, then open ``driver`` on it and check it with ``opened``."""
        self.start_hypervisor()
        self.driver = self.driver_class(self.config())
        try:
            await self.opened()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close ``driver`` (again, if a test did), then stop the hypervisor."""
        await self.driver.close()
        self.stop_hypervisor()

    def next_name(self) -> str:
        """A name no instance of this harness has had yet."""
        self._made += 1
        return f"vm-{self._made}"

    def exempt(self, point: ContractPoint) -> None:
        """Skip the calling test, saying why, if this driver is excepted from ``point``."""
        reason = self.exceptions.get(point)
        if reason is not None:
            pytest.skip(f"{self.label or self.name} driver is excepted from {point!r}: {reason}")

    def start_hypervisor(self) -> None:
        """Bring the hypervisor up (before ``config`` is called); nothing to do by default."""

    async def opened(self) -> None:
        """Check the new ``driver`` and what it sees before a test uses it; nothing by default."""

    def stop_hypervisor(self) -> None:
        """Take it down again once the driver is closed; nothing to do by default."""

    @abc.abstractmethod
    def config(self, **overrides: Any) -> dict[str, Any]:
        """A valid driver config for this hypervisor, with ``overrides`` applied on top."""

    @abc.abstractmethod
    def make(self, state: PowerState) -> str:
        """A fresh, unblocked instance in ``state`` owned by ``OWNER``; its id, in lower case."""

    @abc.abstractmethod
    def hypervisor_state(self, instance_id: str) -> PowerState:
        """The power state as the hypervisor itself records it."""

    @abc.abstractmethod
    def hypervisor_record(self, instance_id: str) -> object:
        """Everything the hypervisor keeps about the instance, comparable with ``==``."""

    @abc.abstractmethod
    def unreachable(self) -> Driver:
        """A new driver whose hypervisor cannot be reached; the caller closes it."""

    def cut(self) -> None:
        """Make the hypervisor unreachable for ``driver`` (``comes_back``)."""
        raise NotImplementedError(f"{self.name}: implement cut/restore or except 'comes_back'")

    def restore(self) -> None:
        """Make it reachable again after ``cut``, with its instances as they were."""
        raise NotImplementedError(f"{self.name}: implement cut/restore or except 'comes_back'")
