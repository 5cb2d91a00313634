"""Posting rollout decisions to a webhook: JSON with a ``text`` line chat tools display.

Slack, Mattermost, Teams' and Discord's incoming webhooks show ``text`` (Discord reads
``content``: both are sent); the structured decision rides along under ``decision``. A webhook
that fails or is slow is logged and counted, never retried in the controller's loop.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from gateway.config.rollout import WebhookSpec
from gateway.metrics import Metrics

log = logging.getLogger(__name__)


def message(entry: dict[str, Any]) -> str:
    """One line for people: deployment, candidate, action and why."""
    action = str(entry.get("action", "")).replace("_", " ")
    dry = " (dry run: not applied)" if entry.get("dry_run") else ""
    return (f"[shadowgate] {entry.get('deployment')}: {action} {entry.get('candidate')}"
            f"{dry}: {entry.get('summary', '')}")


class Webhook:
    """Posts decisions; one pooled client for the controller's life."""

    def __init__(self, metrics: Metrics, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        self._client = httpx.AsyncClient(transport=transport)
        self._failures = metrics.rollout_webhook_failures

    async def post(self, spec: WebhookSpec, entry: dict[str, Any]) -> bool:
        text = message(entry)
        try:
            response = await self._client.post(
                spec.url, json={"text": text, "content": text, "decision": entry},
                headers=spec.headers, timeout=spec.timeout_s)
        except httpx.HTTPError as exc:
            self._failures.inc()
            log.warning("rollout webhook %s failed: %r", spec.url, exc)
            return False
        if response.status_code >= 300:
            self._failures.inc()
            log.warning("rollout webhook %s answered %d", spec.url, response.status_code)
            return False
        return True

    async def close(self) -> None:
        await self._client.aclose()
