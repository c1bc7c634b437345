"""The configuration reference (``docs/config.md``), rendered from the schema itself.

``markdown()`` lists every key with its default and help text, section by section,
in the order of the schema. ``statelock check-config --explain --markdown`` prints it;
a test keeps ``docs/config.md`` equal to it, so the reference can't go stale.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from sidecar.config.schema import REPO_ROOT, Config

_HEADER = """\
# Configuration reference

Every key of a Statelock config file, with its default and meaning. Generated from the
schema (`sidecar/config/schema.py`) by `statelock check-config --explain --markdown`;
`tests/unit/test_config_reference.py` fails when this page and the schema differ.
Unknown keys are refused at start-up, naming the key and the valid ones; `statelock
check-config FILE` validates a file exactly as `serve` would.
"""


_DRIVERS = """\
## Driver settings (`backend.driver`)

`backend.driver` is a mapping whose `name` picks the driver (`libvirt`, `xenapi`, `fake`); its
other keys belong to that driver, which refuses any key it does not know, naming the valid ones.
`libvirt`: `uri` (default `test:///default`), `default_owner: {project_id, user_id}`, `host`,
`shutdown_timeout` (seconds, default 60). `xenapi`: `url`, `username`, `password`,
`default_owner`, `host`, `timeout` (default 60), `verify_tls` (default true). `fake`:
`instances` (a list of `{id, name, project_id, user_id, host, power_state}`), for tests.
See [hypervisors.md](hypervisors.md) for what each driver enforces at the hypervisor."""


def _default(f: dataclasses.Field[Any]) -> str:
    value: Any = None
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    if isinstance(value, str) and value.startswith(str(REPO_ROOT)):
        value = value[len(str(REPO_ROOT)) + 1:]  # NOTE: a checkout's own path means nothing elsewhere
    if value is None:
        return "(none)"
    if isinstance(value, tuple | dict) and not value:
        return "(empty)"
    return f"`{value!r}`" if not isinstance(value, str) else f'`"{value}"`'


def _rows(cls: type[Any], prefix: str, out: list[str]) -> None:
    hints = typing.get_type_hints(cls)
    nested: list[tuple[str, type[Any], str]] = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            nested.append((f"{prefix}{f.name}", tp, f.metadata.get("help", "")))
            continue
        text = f.metadata.get("help", "").replace("|", "\\|")
        out.append(f"| `{prefix}{f.name}` | {_default(f)} | {text} |")
    for key, tp, text in nested:
        doc = (tp.__doc__ or "").strip().splitlines()[0]
        intro = doc if text.rstrip(".") in doc else f"{doc} {text}"
        out += ["", f"## `{key}`", "", intro, "", "| key | default | meaning |", "|---|---|---|"]
        _rows(tp, key + ".", out)


def markdown() -> str:
    """The reference page as Markdown."""
    out = [_HEADER, "## Top level", "", "| key | default | meaning |", "|---|---|---|"]
    _rows(Config, "", out)
    out += ["", _DRIVERS]
    return "\n".join(out) + "\n"
