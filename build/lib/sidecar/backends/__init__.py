"""Backends: where allowed requests go (an upstream compute API or a driver)."""
