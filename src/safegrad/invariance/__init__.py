"""Robust control invariant sets, safe action sets and the safety monitor (spec A §2.4, §11)."""
