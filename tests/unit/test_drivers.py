"""``drivers.create`` and the ``DriverError`` family (``drivers/__init__.py``, ``drivers/base.py``)."""

from __future__ import annotations

import sys

import pytest

import drivers


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (drivers.DriverError, "driver_error"),
        (drivers.InstanceNotFound, "instance_not_found"),
        (drivers.InvalidState, "invalid_state"),
        (drivers.OperationBlocked, "operation_blocked"),
        (drivers.DriverUnavailable, "driver_unavailable"),
        (drivers.DriverConfigError, "driver_config_error"),
    ],
)
def test_each_driver_error_has_its_code(error: type[drivers.DriverError], code: str) -> None:
    assert error.code == code
    assert issubclass(error, drivers.DriverError)


def test_create_refuses_an_unknown_name() -> None:
    with pytest.raises(drivers.DriverConfigError, match="valid drivers: fake, libvirt, xenapi"):
        drivers.create("vmware", {})


@pytest.mark.parametrize(
    ("name", "module", "sdk", "package"),
    [
        ("libvirt", "drivers.libvirt", "libvirt", "libvirt-python"),
        ("xenapi", "drivers.xenapi", "XenAPI", "XenAPI"),
    ],
)
def test_create_names_the_pip_package_of_a_missing_sdk(
    monkeypatch: pytest.MonkeyPatch, name: str, module: str, sdk: str, package: str
) -> None:
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, sdk, None)  # makes `import <sdk>` fail
    with pytest.raises(drivers.DriverConfigError, match=f"pip install {package}"):
        drivers.create(name, {})
