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
    """Rollout runtime state and decision history."""
    return f"sg:{{{deployment}}}:rollout"
