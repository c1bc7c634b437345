"""Reading a driver's config mapping: unknown keys, typed options and the default owner.

Every helper raises ``DriverConfigError`` with a message naming the driver and the
key, so a bad config fails at start-up rather than on the first request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from drivers.base import DriverConfigError


@dataclasses.dataclass(frozen=True)
class Owner:
    """The project and user an instance belongs to, as Nova would report them."""

    project_id: str
    user_id: str


NO_OWNER = Owner(project_id="", user_id="")
"""The owner of an instance whose hypervisor records none and no ``default_owner`` is set."""


def check_keys(where: str, config: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """Raise ``DriverConfigError`` if ``config`` holds a key not in ``allowed``.

    ``where`` names the mapping in the message, e.g. ``"libvirt driver"``.
    """
    unknown = sorted(str(key) for key in set(config) - allowed)
    if unknown:
        raise DriverConfigError(
            f"{where}: unknown config key(s) {', '.join(unknown)};"
            f" valid keys: {', '.join(sorted(allowed))}"
        )


def optional_str(driver: str, config: Mapping[str, Any], key: str) -> str | None:
    """The string at ``key``, ``None`` if absent or null; ``DriverConfigError`` if not a string."""
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DriverConfigError(f"{driver} driver: {key} must be a string")
    return value


def required_str(driver: str, config: Mapping[str, Any], key: str) -> str:
    """The non-empty string at ``key``; ``DriverConfigError`` if missing or empty."""
    value = optional_str(driver, config, key)
    if not value:
        raise DriverConfigError(f"{driver} driver: {key} is required")
    return value


def positive_float(driver: str, config: Mapping[str, Any], key: str, default: float) -> float:
    """The number at ``key`` (``default`` if absent); ``DriverConfigError`` unless >= 0."""
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise DriverConfigError(f"{driver} driver: {key} must be a number >= 0")
    return float(value)


def default_owner(driver: str, config: Mapping[str, Any]) -> Owner:
    """The ``default_owner: {project_id, user_id}`` mapping, or ``NO_OWNER`` if absent."""
    value = config.get("default_owner")
    if value is None:
        return NO_OWNER
    if not isinstance(value, Mapping):
        raise DriverConfigError(f"{driver} driver: default_owner must be a mapping")
    check_keys(f"{driver} driver: default_owner", value, frozenset({"project_id", "user_id"}))
    return Owner(
        project_id=required_str(driver, value, "project_id"),
        user_id=required_str(driver, value, "user_id"),
    )
