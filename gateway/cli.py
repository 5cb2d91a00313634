"""shadowgate serve | validate | export."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.settings import Settings

log = logging.getLogger("gateway.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shadowgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the models of a config file")
    serve.add_argument("--config", type=Path, help="deployment config (SHADOWGATE_CONFIG)")
    serve.add_argument("--host", help="bind address (SHADOWGATE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (SHADOWGATE_PORT, default 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (SHADOWGATE_WORKERS)")
    serve.add_argument("--redis-url", help="external Redis (SHADOWGATE_REDIS_URL); default: "
                       "an embedded Redis under the state dir")
    serve.add_argument("--state-dir", type=Path, help="embedded Redis data and the spool "
                       "(SHADOWGATE_STATE_DIR, default .shadowgate)")
    serve.add_argument("--log-level", help="SHADOWGATE_LOG_LEVEL, default info")
    validate = sub.add_parser("validate", help="check a config file (and its models)")
    validate.add_argument("config", type=Path)
    validate.add_argument("--no-models", action="store_true",
                          help="check the file only, do not load the models")
    export = sub.add_parser("export", help="stream paired records (with feedback) to a file")
    export.add_argument("--deployment", required=True)
    export.add_argument("--since", help="ISO time (UTC; a date means its midnight) or "
                        "relative to now (30m, 24h, 7d)")
    export.add_argument("--until", help="same forms as --since; exclusive")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--output", "-o", help="file to write (default or '-': stdout)")
    export.add_argument("--redis-url", help="SHADOWGATE_REDIS_URL; default: the embedded one")
    export.add_argument("--state-dir", type=Path)
    return parser


def cmd_validate(path: Path, load_models: bool) -> int:
    import asyncio

    from gateway.backends.registry import load_models as load
    from gateway.config.load import load as load_config

    try:
        loaded = load_config(path)
        if load_models:
            models = asyncio.run(load(loaded))
            asyncio.run(_close_all(models))
    except ConfigError as exc:
        print(f"{path}: invalid", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    deployments = ", ".join(d.name for d in loaded.config.deployments) or "none"
    print(f"{path}: valid (revision {loaded.revision}; {len(loaded.config.models)} model(s); "
          f"deployments: {deployments})")
    return 0


async def _close_all(models: object) -> None:
    for backend in models:  # type: ignore[attr-defined]
        await backend.close()


def check_access(settings: Settings) -> bool:
    """Check the tokens (False, with the errors on stderr, when they are unusable) and log who
    may call what: a WARNING for what stays disabled until a token is configured."""
    from gateway.web.auth import Guard

    try:
        guard = Guard.from_settings(settings)
    except ConfigError as exc:
        print("tokens: invalid", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return False
    for warning, note in guard.describe():
        log.log(logging.WARNING if warning else logging.INFO, "access: %s", note)
    return True


def cmd_serve(settings: Settings) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from gateway.web.limits import Limits, protocol_for

    if cmd_validate(settings.config, load_models=False) != 0 or not check_access(settings):
        return 1
    embedded = None
    # Worker processes rebuild their settings from the environment: put every flag there.
    env = {"SHADOWGATE_CONFIG": str(settings.config.resolve()),
           "SHADOWGATE_STATE_DIR": str(settings.state_dir.resolve()),
           "SHADOWGATE_LOG": settings.log, "SHADOWGATE_LOG_LEVEL": settings.log_level,
           "SHADOWGATE_HOST": settings.host}
    if settings.redis_url is not None:
        env["SHADOWGATE_REDIS_URL"] = settings.redis_url
    if settings.workers > 1:
        if settings.redis_url is None and settings.log == "redis":
            # One embedded Redis for all workers, owned by this parent process.
            from gateway.predlog.embedded import EmbeddedRedis

            embedded = EmbeddedRedis(settings.state_dir / "redis")
            embedded.start()
            env["SHADOWGATE_REDIS_URL"] = embedded.url
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="shadowgate-metrics-")
    os.environ.update(env)
    # No X-Forwarded-* rewriting (the gateway never reads the client address) and no
    # "server" header: both cost per request and serve nobody here. The HTTP limits
    # (gateway/web/limits.py) replace uvicorn's limit_concurrency, to answer in JSON.
    options: dict[str, Any] = dict(
        host=settings.host, port=settings.port, log_level=settings.log_level,
        access_log=False, timeout_graceful_shutdown=settings.shutdown_timeout_s,
        proxy_headers=False, server_header=False, timeout_keep_alive=settings.keep_alive_s,
        backlog=min(settings.max_connections, 4096))
    try:
        if settings.workers > 1:
            config = uvicorn.Config("gateway.app:app_from_env", factory=True,
                                    workers=settings.workers,
                                    http="gateway.web.limits:FromEnv", **options)
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            from gateway.app import create_app

            app = create_app(settings, tune_gc=True, handle_signals=True)
            server = uvicorn.Server(uvicorn.Config(
                app, http=protocol_for(Limits.from_settings(settings)), **options))
            server.run()
            if not server.started:
                return 1
    finally:
        if embedded is not None and embedded.owned:
            embedded.stop()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from gateway.predlog.export import run_export

    settings = Settings.from_env(redis_url=args.redis_url, state_dir=args.state_dir)
    url = settings.redis_url
    embedded = None
    if url is None:
        from gateway.predlog.embedded import EmbeddedRedis

        embedded = EmbeddedRedis(settings.state_dir / "redis")
        embedded.start()
        url = embedded.url
    from redis.exceptions import RedisError

    try:
        count = run_export(url, args.deployment, args.since, args.until, args.format,
                           args.output)
    except ValueError as exc:
        print(f"shadowgate export: {exc}", file=sys.stderr)
        return 2
    except (RedisError, OSError) as exc:
        print(f"shadowgate export: {exc}", file=sys.stderr)
        return 1
    finally:
        if embedded is not None and embedded.owned:  # never stop a running gateway's Redis
            embedded.stop()
    print(f"exported {count} record(s)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        logging.basicConfig(level=logging.WARNING)
        return cmd_validate(args.config, not args.no_models)
    if args.command == "export":
        return cmd_export(args)
    try:
        settings = Settings.from_env(config=args.config, host=args.host, port=args.port,
                                     workers=args.workers, redis_url=args.redis_url,
                                     state_dir=args.state_dir, log_level=args.log_level)
    except ValueError as exc:
        print(f"shadowgate: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return cmd_serve(settings)
