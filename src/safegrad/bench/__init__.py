"""Benchmarks (``safegrad bench ...``); each is a module with ``main(argv) -> int`` that writes
JSON + markdown under ``benchmarks/`` together with the command and library versions.

* :mod:`safegrad.bench.qp`: ``safegrad.qp`` vs qpth / cvxpylayers (Clarabel) / proxsuite.
"""
