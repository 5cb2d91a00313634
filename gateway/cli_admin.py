"""shadowgate rollout status|pause|resume|promote|rollback, shadowgate reload: the admin API.

They call a running gateway (``--url``, default ``SHADOWGATE_URL`` or http://127.0.0.1:8000)
with the admin token (``--token`` or ``SHADOWGATE_ADMIN_TOKEN``) and print what it answers;
the exit status is 0 when the gateway did what was asked, 1 when it refused or failed (its
message on stderr), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import httpx
import orjson

DEFAULT_URL = "http://127.0.0.1:8000"


def add_commands(sub: Any) -> None:
    """The ``rollout`` and ``reload`` subcommands on the CLI's parser."""
    rollout = sub.add_parser("rollout", help="a running gateway's rollouts (admin API)")
    rollout.add_argument("action", choices=["status", "pause", "resume", "promote",
                                            "rollback"])
    rollout.add_argument("--deployment", help="required for every action but status")
    rollout.add_argument("--reason", help="why (required for every action but status)")
    rollout.add_argument("--write-config", action="store_true",
                         help="with promote: also rewrite the config file to match")
    rollout.add_argument("--json", action="store_true", help="print the raw JSON answer")
    reload = sub.add_parser("reload", help="make a running gateway read its config again")
    for parser in (rollout, reload):
        parser.add_argument("--url", help=f"the gateway (SHADOWGATE_URL, default {DEFAULT_URL})")
        parser.add_argument("--token", help="admin token (SHADOWGATE_ADMIN_TOKEN)")


def _client(args: argparse.Namespace) -> httpx.Client:
    url = args.url or os.environ.get("SHADOWGATE_URL") or DEFAULT_URL
    token = args.token or os.environ.get("SHADOWGATE_ADMIN_TOKEN")
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30)


def _answer(response: httpx.Response, raw: bool) -> tuple[int, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:500]}
    if response.status_code >= 400:
        print(f"shadowgate: the gateway answered {response.status_code}: "
              f"{body.get('error', body)}", file=sys.stderr)
        return 1, body
    if raw:
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    return 0, body


def cmd_reload(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            code, body = _answer(client.post("/admin/reload"), False)
    except httpx.HTTPError as exc:
        print(f"shadowgate reload: cannot reach the gateway: {exc}", file=sys.stderr)
        return 1
    if code == 0:
        print(f"{body['result']}: revision {body['revision']}")
    else:
        for error in body.get("errors") or ():
            print(f"  {error}", file=sys.stderr)
    return code


def cmd_rollout(args: argparse.Namespace) -> int:
    if args.action != "status" and (not args.deployment or not args.reason):
        print(f"shadowgate rollout {args.action}: --deployment and --reason are required",
              file=sys.stderr)
        return 2
    if args.write_config and args.action != "promote":
        print("shadowgate rollout: --write-config goes with promote only", file=sys.stderr)
        return 2
    try:
        with _client(args) as client:
            if args.action == "status":
                code, body = _answer(client.get("/admin/status"), args.json)
                if code == 0 and not args.json:
                    _print_status(body, args.deployment)
                return code
            payload: dict[str, Any] = {"reason": args.reason}
            if args.write_config:
                payload["write_config"] = True
            code, body = _answer(client.post(
                f"/admin/rollouts/{args.deployment}/{args.action}", json=payload), args.json)
    except httpx.HTTPError as exc:
        print(f"shadowgate rollout: cannot reach the gateway: {exc}", file=sys.stderr)
        return 1
    if code == 0 and not args.json:
        state = body["state"]
        print(f"{args.deployment}: {state['status']} in {state['stage_name']} "
              f"({state['candidate']}), by {body['by']}")
        if body.get("config_change"):
            print(body["config_change"])
    return code


def _print_status(body: dict[str, Any], only: str | None) -> None:
    print(f"revision {body['revision']}" + (f" ({body['config']})" if body["config"] else ""))
    last = body.get("last_reload")
    if last:
        print(f"last reload: {last['result']}" + "".join(f"\n  {e}" for e in last["errors"]))
    print(f"controller acting on: {body.get('controller') or 'none'}")
    for name, rollout in body["rollouts"].items():
        if only and name != only:
            continue
        state = rollout["state"]
        where = "not started" if state is None else (
            f"{state['status']} in {state['stage_name']} since "
            f"{_ago(state['stage_started'])}")
        dry = " (dry run)" if rollout["dry_run"] else ""
        print(f"{name}: {rollout['candidate']} {where}{dry}")
        decision = rollout.get("last_decision")
        if decision:
            print(f"  last decision: {decision['action']}: {decision['summary']}")


def _ago(ts: float) -> str:
    import time

    seconds = max(0.0, time.time() - ts)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
