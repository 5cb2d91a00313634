"""Redis key names. Every key of a deployment shares the hash tag ``{deployment}``
so that Redis Cluster keeps them on one shard."""

from __future__ import annotations


def pairs(deployment: str) -> str:
    """Stream of paired records, one entry per request."""
    return f"sg:{{{deployment}}}:pairs"


def ids(deployment: str) -> str:
    """Sorted set of the request ids (and caller body ids) that have a record: member -> the
    record's ts in ms. Tells feedback whether a label's request was logged."""
    return f"sg:{{{deployment}}}:ids"


def feedback(deployment: str) -> str:
    """Hash of feedback: the id the caller used -> JSON {"label"?, "outcomes"?, "ts",
    "received", "by", "corrections"} (see predlog/feedback.py)."""
    return f"sg:{{{deployment}}}:feedback"


def feedback_received(deployment: str) -> str:
    """Sorted set beside the feedback hash: id -> when it was last written (ms), so that
    retention drops the oldest first."""
    return f"sg:{{{deployment}}}:feedback:received"


def rollout(deployment: str) -> str:
    """Rollout runtime state (JSON: stage, since when, status, version)."""
    return f"sg:{{{deployment}}}:rollout"


def rollout_history(deployment: str) -> str:
    """Stream of rollout decisions, automatic and manual."""
    return f"sg:{{{deployment}}}:rollout:history"


def rollout_lock() -> str:
    """The lock that lets one replica's rollout controller act at a time."""
    return "sg:rollout:lock"
