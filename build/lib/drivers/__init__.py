"""Hypervisor drivers behind one async interface, and ``create`` to build one by name.

``drivers`` never imports ``sidecar``. Each driver module is imported only when it
is chosen, so a missing SDK fails only the deployment that asks for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers import base
from drivers.base import *  # noqa: F403  (the interface, re-exported: base.__all__ lists it)
from drivers.base import Driver, DriverConfigError

__all__ = ["DRIVER_NAMES", "create"]
__all__ += base.__all__

DRIVER_NAMES = ("fake", "libvirt", "xenapi")
"""The names ``create`` accepts."""

# NOTE: the SDK's import name -> the pip package that provides it.
_SDK_PACKAGES = {"libvirt": "libvirt-python", "XenAPI": "XenAPI"}


def create(name: str, config: Mapping[str, Any]) -> Driver:
    """Build the driver called ``name`` from its config mapping; no connection is opened yet.

    Raises ``DriverConfigError`` for an unknown name, for a config the driver rejects,
    or when the driver's SDK is not installed (the message names the pip package).
    """
    try:
        if name == "fake":
            from drivers.fake import FakeDriver

            return FakeDriver(config)
        if name == "libvirt":
            from drivers.libvirt import LibvirtDriver

            return LibvirtDriver(config)
        if name == "xenapi":
            from drivers.xenapi import XenAPIDriver

            return XenAPIDriver(config)
    except ImportError as exc:
        package = _SDK_PACKAGES.get(exc.name or "")
        if package is None:
            raise
        raise DriverConfigError(
            f"the {name} driver needs the {exc.name} module: pip install {package}"
        ) from exc
    raise DriverConfigError(f"unknown driver {name!r}; valid drivers: {', '.join(DRIVER_NAMES)}")
