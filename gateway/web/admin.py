"""The admin API: status, reload, and people's actions on rollouts. Admin scope only.

    GET  /admin/status                            config, reloads, rollouts, the acting replica
    POST /admin/reload                            read the config file again (as on SIGHUP)
    GET  /admin/rollouts/{deployment}             a rollout's state and recorded decisions
    POST /admin/rollouts/{deployment}/{action}    pause | resume | promote | rollback,
                                                  body {"reason": "..."} (required)

Nothing else changes routing: every action is recorded with who (the token's name) and why.
Disabled (403) when no admin token is configured.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.config.rewrite import promote_in_file
from gateway.errors import BadRequest, ConfigError, GatewayError, NotFound, NotReady
from gateway.protocol.v2 import parse_json
from gateway.rollout import store
from gateway.rollout.controller import ActionRefused, Manual
from gateway.rollout.state import RolloutState
from gateway.runtime import Runtime
from gateway.web.auth import authorize
from gateway.web.http import check_json_content_type, json_response, read_body

ACTIONS = ("pause", "resume", "promote", "rollback")
MAX_REASON = 500


class Conflict(GatewayError):
    status_code = 409
    code = "conflict"


def _state(state: RolloutState | None, stages: list[str]) -> dict[str, Any] | None:
    if state is None:
        return None
    out = dataclasses.asdict(state)
    out["stage_name"] = stages[state.stage] if 0 <= state.stage < len(stages) else None
    return out


async def status(request: Request) -> Response:
    authorize("admin", request)
    runtime: Runtime = request.app.state.runtime
    serving = runtime.serving
    loaded = serving.loaded
    reloader = runtime.reloader
    controller = runtime.controller
    body: dict[str, Any] = {
        "revision": runtime.service.snapshot.revision,
        "config": None if loaded is None or loaded.path is None else str(loaded.path),
        "last_reload": None if reloader is None or reloader.last is None
        else dataclasses.asdict(reloader.last),
        "replica": controller.lock.owner if controller is not None else None,
        "acting": controller.lock.held if controller is not None else False,
        "rollouts": {},
    }
    if loaded is not None and runtime.redis is not None:
        try:
            body["controller"] = await controller.lock.holder() if controller else None
            for spec in loaded.config.deployments:
                if spec.rollout is None:
                    continue
                state = await store.load_state(runtime.redis, spec.name)
                last = await store.history(runtime.redis, spec.name, 1)
                body["rollouts"][spec.name] = {
                    "candidate": spec.rollout.candidate, "dry_run": spec.rollout.dry_run,
                    "state": _state(state, [s.label for s in spec.rollout.stages]),
                    "last_decision": last[-1] if last else None}
        except RedisError as exc:
            body["redis_error"] = str(exc)
    return json_response(body)


async def reload(request: Request) -> Response:
    principal = authorize("admin", request)
    runtime: Runtime = request.app.state.runtime
    if runtime.reloader is None:
        raise NotReady("this gateway was not started from a config file; nothing to reload")
    result = await runtime.reloader.reload()
    body = {**dataclasses.asdict(result), "by": principal.name}
    status_code = {"applied": 200, "unchanged": 200, "invalid": 422, "failed": 503}[
        result.result]
    return json_response(body, status_code)


async def rollout(request: Request) -> Response:
    authorize("admin", request)
    runtime: Runtime = request.app.state.runtime
    deployment = request.path_params["deployment"]
    loaded = runtime.serving.loaded
    spec = next((d for d in loaded.config.deployments if d.name == deployment), None) \
        if loaded is not None else None
    if spec is None or spec.rollout is None:
        raise NotFound(f"deployment {deployment!r} has no rollout in the config")
    if runtime.redis is None:
        raise NotReady("rollouts keep their state in Redis (SHADOWGATE_LOG=redis)")
    count = request.query_params.get("history", "100")
    if not count.isdigit() or not 0 < int(count) <= 10_000:
        raise BadRequest(f"history: expected a number from 1 to 10000, got {count!r}")
    try:
        state = await store.load_state(runtime.redis, deployment)
        history = await store.history(runtime.redis, deployment, int(count))
    except RedisError as exc:
        raise NotReady(f"Redis is unavailable, retry later: {exc}") from None
    return json_response({"deployment": deployment, "candidate": spec.rollout.candidate,
                          "stages": [s.label for s in spec.rollout.stages],
                          "state": _state(state, [s.label for s in spec.rollout.stages]),
                          "history": history})


async def act(request: Request) -> Response:
    principal = authorize("admin", request)
    runtime: Runtime = request.app.state.runtime
    deployment, action = request.path_params["deployment"], request.path_params["action"]
    if action not in ACTIONS:
        raise NotFound(f"action {action!r}: expected one of {', '.join(ACTIONS)}")
    check_json_content_type(request)
    payload = parse_json(await read_body(request, 64 * 1024))
    reason = payload.get("reason") if isinstance(payload, dict) else None
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise BadRequest(f"reason: expected a non-empty string of at most {MAX_REASON} "
                         f"characters saying why, got {reason!r}"[:300])
    allowed = {"reason", "write_config"}
    if isinstance(payload, dict) and payload.keys() - allowed:
        raise BadRequest(f"body: unknown field(s) {sorted(payload.keys() - allowed)}; "
                         f"expected {sorted(allowed)}")
    write_config = payload.get("write_config", False)
    if not isinstance(write_config, bool) or (write_config and action != "promote"):
        raise BadRequest("write_config: expected true or false, and only with promote")
    controller, loaded = runtime.controller, runtime.serving.loaded
    if controller is None or loaded is None:
        raise NotReady("rollouts keep their state in Redis (SHADOWGATE_LOG=redis)")
    try:
        state = await controller.act(loaded, deployment, cast(Manual, action),
                                     by=principal.name, reason=reason.strip())
    except KeyError as exc:
        raise NotFound(str(exc.args[0])) from None
    except ActionRefused as exc:
        raise Conflict(str(exc)) from None
    except RedisError as exc:
        raise NotReady(f"Redis is unavailable, retry later: {exc}") from None
    spec = next(d for d in loaded.config.deployments if d.name == deployment)
    assert spec.rollout is not None
    body: dict[str, Any] = {"state": _state(state, [s.label for s in spec.rollout.stages]),
                            "by": principal.name}
    if state.status == "promoted":
        body["config_change"] = (
            f"the running gateway serves {state.candidate} as the champion of {deployment}; "
            f"to keep it so in the file, set deployments[{deployment}].champion to "
            f"{state.candidate} and remove its rollout section")
        if write_config:
            if loaded.path is None:
                raise NotReady("this gateway was not started from a config file")
            try:
                backup = promote_in_file(loaded.path, deployment, state.candidate)
            except (ConfigError, OSError) as exc:
                raise Conflict(f"the promotion stands, but the file was not rewritten: "
                               f"{exc}") from None
            body["config_change"] = (f"{loaded.path} now names {state.candidate} as the "
                                     f"champion (the old file is {backup.name})")
    return json_response(body)


routes = [
    Route("/admin/status", status, methods=["GET"]),
    Route("/admin/reload", reload, methods=["POST"]),
    Route("/admin/rollouts/{deployment}", rollout, methods=["GET"]),
    Route("/admin/rollouts/{deployment}/{action}", act, methods=["POST"]),
]
