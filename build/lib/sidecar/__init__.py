"""Statelock: instance state locks enforced above the hypervisor."""

__version__ = "0.1.0"
