"""The ``statelock`` command line: ``main`` parses and dispatches; one module per command group."""

from sidecar.cli.main import main

__all__ = ["main"]
