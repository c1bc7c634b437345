"""The fake driver in the contract suite: one configured instance per power state."""

from __future__ import annotations

from typing import Any

from drivers import Driver, PowerState
from drivers.fake import FakeDriver
from tests.support.driver_harness import OWNER, DriverHarness

# NOTE: in upper case on purpose: the fake must report ids in lower case.
_IDS = {state: f"8F0C2A4E-1B7D-4C55-9A1E-3C2F7B9D0A{n:02d}" for n, state in enumerate(PowerState)}
_VM = "8f0c2a4e-1b7d-4c55-9a1e-3c2f7b9d0aff"


class FakeHarness(DriverHarness[FakeDriver]):
    """A ``FakeDriver`` configured with one instance in each power state; the fake is its own hypervisor.

    The fake can't add instances after it is built, so ``make`` hands out the
    configured instance of that state, once per test.
    """

    name = "fake"
    driver_class = FakeDriver
    states = frozenset(PowerState)
    starts_suspended = True
    not_found_ids = (_VM,)
    unreachable_message = "fake driver is unavailable"
    bad_configs = (
        ({"instance": []}, "unknown config key"),
        ({"instances": {}}, "list of mappings"),
        ({"instances": [{"id": _VM, "name": "x", "project_id": "p"}]}, "user_id is required"),
        ({"instances": [{"id": _VM, "name": "x", "project_id": "p", "user_id": "u",
                         "power_state": "asleep"}]}, "asleep"),
        ({"instances": [{"id": _VM, "name": "x", "project_id": "p", "user_id": "u",
                         "colour": "red"}]}, "colour"),
        ({"instances": [{"id": _VM, "name": "x", "project_id": "p", "user_id": "u"},
                        {"id": _VM.upper(), "name": "y", "project_id": "p", "user_id": "u"}]},
         "duplicate"),
    )  # fmt: skip
    exceptions = {
        "configured_host": "the fake has no driver-wide host: each configured instance names its own",
    }
    host = "cmp-1"

    def __init__(self) -> None:
        super().__init__()
        self._handed_out: set[PowerState] = set()

    def config(self, **overrides: Any) -> dict[str, Any]:
        instances = [
            {"id": vm_id, "name": f"vm-{state.value}", "host": self.host, "power_state": state.name, **OWNER}
            for state, vm_id in _IDS.items()
        ]
        return {"instances": instances, **overrides}

    def make(self, state: PowerState) -> str:
        if state in self._handed_out:
            raise AssertionError(f"the fake harness has one {state.name} instance per test")
        self._handed_out.add(state)
        return _IDS[state].lower()

    def hypervisor_state(self, instance_id: str) -> PowerState:
        return self.driver.stored_instance(instance_id).power_state

    def hypervisor_record(self, instance_id: str) -> object:
        return self.driver.stored_instance(instance_id)

    def unreachable(self) -> Driver:
        driver = FakeDriver(self.config())
        driver.set_unavailable(True)
        return driver

    def cut(self) -> None:
        self.driver.set_unavailable(True)

    def restore(self) -> None:
        self.driver.set_unavailable(False)
