"""Shadowgate: a shadow/canary serving gateway for ML models (Open Inference Protocol V2)."""

__version__ = "0.1.0"
