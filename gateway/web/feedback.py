"""POST /feedback: ground-truth labels, joined to paired records by request id."""

from __future__ import annotations

from typing import Any

routes: list[Any] = []
