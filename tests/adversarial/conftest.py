"""Fixtures of the adversarial tests: a per-run tally of fuzzed requests, printed at the end."""

from __future__ import annotations

import pytest

FUZZ_COUNTS = pytest.StashKey[dict[str, int]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FUZZ_COUNTS] = {}


@pytest.fixture(scope="session")
def fuzz_counts(request: pytest.FixtureRequest) -> dict[str, int]:
    """Counts the fuzz tests add to; ``pytest_terminal_summary`` prints them."""
    return request.config.stash[FUZZ_COUNTS]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    counts = config.stash.get(FUZZ_COUNTS, {})
    if counts:
        terminalreporter.write_line(
            "statelock fuzz: " + ", ".join(f"{name}={value}" for name, value in counts.items()))
