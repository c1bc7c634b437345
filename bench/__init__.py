"""The Statelock benchmark harness: ``python -m bench`` (or ``make bench``).

It starts a canned Nova-like upstream (nginx), nginx as a reverse proxy in front
of it, Statelock with the embedded engine and Statelock with a real OPA server,
measures them side by side, and writes ``bench/results/``. See ``bench/README.md``.
"""
