"""Redis key names. Every key of a deployment shares the hash tag ``{deployment}``
so that Redis Cluster keeps them on one shard."""

from __future__ import annotations


def pairs(deployment: str) -> str:
    """Stream of paired records, one entry per request."""
    return f"sg:{{{deployment}}}:pairs"


def feedback(deployment: str) -> str:
    """Hash of ground-truth labels: request id -> orjson {"label", "ts"}."""
    return f"sg:{{{deployment}}}:feedback"


def rollout(deployment: str) -> str:
    """Rollout runtime state (JSON: stage, since when, status, version)."""
    return f"sg:{{{deployment}}}:rollout"


def rollout_history(deployment: str) -> str:
    """Stream of rollout decisions, automatic and manual."""
    return f"sg:{{{deployment}}}:rollout:history"


def rollout_lock() -> str:
    """The lock that lets one replica's rollout controller act at a time."""
    return "sg:rollout:lock"
