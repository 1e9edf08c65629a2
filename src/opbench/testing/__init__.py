"""Test doubles that must be importable in a spawned worker process (see `fakes`).

They live in the package rather than in `tests/` because a worker started with the `spawn` context imports
backends by module path: `tests/` is not a package and is on `sys.path` only under some pytest import modes,
while `opbench.testing` is importable wherever opbench is installed. Nothing here imports a framework.
"""
