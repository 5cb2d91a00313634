"""shadowgate serve | validate | export | report | demo | rollout | reload."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli_admin import add_commands, cmd_reload, cmd_rollout
from gateway.errors import ConfigError
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.config.load import LoadedConfig

log = logging.getLogger("gateway.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shadowgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the models of a config file")
    serve.add_argument("--config", type=Path, help="deployment config (SHADOWGATE_CONFIG)")
    serve.add_argument("--host", help="bind address (SHADOWGATE_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (SHADOWGATE_PORT, default 8000)")
    serve.add_argument("--grpc-port", help="V2 gRPC port on the same host "
                       "(SHADOWGATE_GRPC_PORT, default 8001 as Triton's; 0 or 'off': none)")
    serve.add_argument("--access-log", choices=["off", "on", "json"],
                       help="a line per request (SHADOWGATE_ACCESS_LOG, default off; failed "
                       "inference requests are always logged)")
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
    export.add_argument("--format", choices=["jsonl", "csv", "parquet"], default="jsonl",
                        help="parquet: a directory DIR/deployment=NAME/date=YYYY-MM-DD/, whole "
                        "UTC days, each day's files replaced as a whole")
    export.add_argument("--output", "-o", help="file to write (default or '-': stdout); for "
                        "parquet the directory (required)")
    export.add_argument("--config", type=Path, help="parquet: names input columns by the "
                        "champion card's features (SHADOWGATE_CONFIG, default "
                        "config/example.yaml when it exists)")
    export.add_argument("--redis-url", help="SHADOWGATE_REDIS_URL; default: the embedded one")
    report = sub.add_parser("report", help="compare a deployment's candidates with its "
                            "champion: verdict, statistics, business impact")
    report.add_argument("--config", type=Path, required=True, help="the deployment config")
    report.add_argument("--deployment", required=True)
    report.add_argument("--candidate", help="one candidate model (default: every one seen)")
    report.add_argument("--since", help="ISO time (UTC) or relative to now (30m, 24h, 7d)")
    report.add_argument("--until", help="same forms as --since; exclusive")
    report.add_argument("--format", choices=["html", "json", "md"], default="html")
    report.add_argument("--out", "-o", help="file to write (default or '-': stdout)")
    report.add_argument("--redis-url", help="SHADOWGATE_REDIS_URL; default: the embedded one")
    report.add_argument("--state-dir", type=Path)
    report.add_argument("--parquet", type=Path, metavar="DIR", help="read the Parquet archive "
                        "under DIR (shadowgate export --format parquet) instead of Redis")
    demo = sub.add_parser("demo", help="start a gateway, send the bundled held-out rows and "
                          "their labels, write the comparison report (about a minute)")
    demo.add_argument("--config", type=Path, default=Path("config/example.yaml"))
    demo.add_argument("--out", "-o", type=Path, default=Path("shadowgate-report.html"))
    demo.add_argument("--format", choices=["html", "json", "md"], default="html")
    demo.add_argument("--passes", type=int, default=5,
                      help="times each held-out row is sent (as different users)")
    add_commands(sub)
    export.add_argument("--state-dir", type=Path)
    return parser


def cmd_validate(path: Path, load_models: bool) -> int:
    """Check the file; then (``load_models``) load every model in one event loop, and
    report each remote model: whether it answered, its metadata, what the gateway cannot
    learn about it (warnings) and where it disagrees with the config (errors)."""
    import asyncio

    from gateway.config.load import load as load_config

    try:
        loaded = load_config(path)
    except ConfigError as exc:
        return _invalid(path, exc.errors)
    report: list[str] = []
    if load_models:
        remote_log = logging.getLogger("gateway.backends.remote")
        level = remote_log.level
        remote_log.setLevel(logging.ERROR)  # its warnings are in the report below
        try:
            errors, report = asyncio.run(_check_models(loaded))
        except Exception as exc:  # a check command reports, it never shows a traceback
            errors = [f"cannot load the models: {type(exc).__name__}: {exc}"]
        finally:
            remote_log.setLevel(level)
        if errors:
            for line in report:
                print(line)
            return _invalid(path, errors)
    deployments = ", ".join(d.name for d in loaded.config.deployments) or "none"
    print(f"{path}: valid (revision {loaded.revision}; {len(loaded.config.models)} model(s); "
          f"deployments: {deployments})")
    for line in report:
        print(line)
    return 0


def _invalid(path: Path, errors: list[str]) -> int:
    print(f"{path}: invalid", file=sys.stderr)
    for error in errors:
        print(f"  {error}", file=sys.stderr)
    return 1


async def _check_models(loaded: LoadedConfig) -> tuple[list[str], list[str]]:
    """(errors, report lines) from loading every model; closes them all in this loop."""
    from gateway.backends.registry import load_models
    from gateway.backends.remote import RemoteBackend

    try:
        models = await load_models(loaded)
    except ConfigError as exc:
        return exc.errors, []
    errors: list[str] = []
    report: list[str] = []
    try:
        for i, spec in enumerate(loaded.config.models):
            backend = models.by_ref[spec.ref]
            if not isinstance(backend, RemoteBackend) or backend.metadata is None:
                continue
            where = f"models[{i}] ({spec.ref})"
            report.append(f"  {where}: remote {backend.where} answered: "
                          f"{backend.metadata.summary()}")
            report.extend(f"    warning: {note}" for note in backend.notes)
            errors.extend(f"{where}: remote {backend.where} does not match the config: "
                          f"{mismatch}" for mismatch in backend.mismatches)
    finally:
        for backend in models:
            await backend.close()
    return errors, report


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
           "SHADOWGATE_HOST": settings.host, "SHADOWGATE_WORKERS": str(settings.workers),
           "SHADOWGATE_GRPC_PORT": str(settings.grpc_port),
           "SHADOWGATE_ACCESS_LOG": settings.access_log}
    if settings.redis_url is not None:
        env["SHADOWGATE_REDIS_URL"] = settings.redis_url
    if settings.workers > 1:
        if settings.redis_url is None and settings.log == "redis":
            # One embedded Redis for all workers, owned by this parent process.
            from gateway.predlog.embedded import EmbeddedRedis

            embedded = EmbeddedRedis(settings.state_dir / "redis", nice=settings.redis_nice,
                                     extra_args=shlex.split(settings.redis_args))
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

            app = create_app(settings, tune_gc=True, handle_signals=True, serve_grpc=True)
            server = uvicorn.Server(uvicorn.Config(
                app, http=protocol_for(Limits.from_settings(settings)), **options))
            server.run()
            if not server.started:
                return 1
    finally:
        if embedded is not None and embedded.owned:
            embedded.stop()
    return 0


def _features(args: argparse.Namespace, settings: Settings) -> tuple[str, ...]:
    """The champion card's feature names for a Parquet export; raises ValueError when a config
    named by --config or SHADOWGATE_CONFIG cannot say them."""
    from gateway.analysis.parquet import champion_features
    from gateway.config.load import load

    explicit = args.config is not None or "SHADOWGATE_CONFIG" in os.environ
    if not explicit and not settings.config.is_file():
        print(f"shadowgate export: no config ({settings.config}): input columns are named "
              "in.<tensor>.<j>; give --config to name them by feature", file=sys.stderr)
        return ()
    try:
        return champion_features(load(settings.config), args.deployment)
    except ConfigError as exc:
        raise ValueError(f"config {settings.config}: {'; '.join(exc.errors)}") from None
    except KeyError as exc:
        if explicit:
            raise ValueError(str(exc.args[0])) from None
        print(f"shadowgate export: {exc.args[0]}: input columns are named in.<tensor>.<j>",
              file=sys.stderr)
        return ()


def _parquet_summary(result: Any, output: str) -> str:
    days = ", ".join(f"{day} ({rows:,} rows)" for day, rows in result.written.items())
    text = (f"exported {result.records} record(s) to {output}: "
            f"{days or 'no records in this window (nothing written)'}")
    if result.kept:
        kept = ", ".join(f"{day} ({rows:,} rows)" for day, rows in result.kept.items())
        text += (f"; kept the archived {kept}: the stream holds fewer of their records now "
                 "(retention)")
    return text


def cmd_export(args: argparse.Namespace) -> int:
    from gateway.predlog.export import check_parquet_output, run_export, window

    settings = Settings.from_env(redis_url=args.redis_url, state_dir=args.state_dir,
                                 **({"config": args.config} if args.config else {}))
    features: tuple[str, ...] = ()
    if args.format == "parquet":  # fail on arguments before starting anything
        try:
            window(args.since, args.until, 0.0)
            check_parquet_output(args.output)
            features = _features(args, settings)
            import gateway.predlog.parquet  # noqa: F401  (pyarrow is an extra)
        except ValueError as exc:
            print(f"shadowgate export: {exc}", file=sys.stderr)
            return 2
        except ImportError as exc:
            print(f"shadowgate export: --format parquet needs pyarrow ({exc}): pip install "
                  "'shadowgate[parquet]'", file=sys.stderr)
            return 1
    from redis.exceptions import RedisError

    try:
        with redis_url(settings) as url:
            if args.format == "parquet":
                from gateway.predlog.export import run_parquet_export

                result = run_parquet_export(url, args.deployment, args.since, args.until,
                                            args.output, features)
                summary = _parquet_summary(result, args.output)
            else:
                count = run_export(url, args.deployment, args.since, args.until, args.format,
                                   args.output)
                summary = f"exported {count} record(s)"
    except ValueError as exc:
        print(f"shadowgate export: {exc}", file=sys.stderr)
        return 2
    except (RedisError, OSError) as exc:
        print(f"shadowgate export: {exc}", file=sys.stderr)
        return 1
    print(summary, file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Read the window's records (Redis, or the Parquet archive with --parquet), build the
    report, write it; exit 1 on a problem with the config, Redis or the files, 2 on bad
    arguments."""
    import asyncio
    import time

    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from gateway.analysis.run import report_from_redis
    from gateway.config.load import load
    from gateway.predlog.export import parse_time
    from gateway.reports import render
    from gateway.rollout.report import with_rollout
    from gateway.rollout.store import load_states
    from gateway.serving import with_rollouts

    now = time.time()
    try:
        since = None if args.since is None else parse_time(args.since, now)
        until = None if args.until is None else parse_time(args.until, now)
        loaded = load(args.config)
    except ValueError as exc:
        print(f"shadowgate report: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"shadowgate report: {args.config}: invalid", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    if args.deployment not in {d.name for d in loaded.config.deployments}:
        names = ", ".join(d.name for d in loaded.config.deployments)
        print(f"shadowgate report: --deployment: {args.deployment!r} is not in {args.config} "
              f"(deployments: {names})", file=sys.stderr)
        return 2

    if args.parquet is not None:
        return _report_from_parquet(args, loaded, since, until, now)

    async def build(url: str) -> str:
        redis = Redis.from_url(url)
        try:
            # As served now: a rollout's stage shapes the deployment (its canary's weight).
            names = [d.name for d in loaded.config.deployments if d.rollout is not None]
            served = with_rollouts(loaded, await load_states(redis, names))
            report = await report_from_redis(
                served, args.deployment, url, since=since, until=until,
                candidate=args.candidate, progress=True, now=now)
            report = await with_rollout(report, loaded, redis)
        finally:
            await redis.aclose()
        return render(report, args.format)

    try:
        with redis_url(Settings.from_env(redis_url=args.redis_url,
                                         state_dir=args.state_dir)) as url:
            text = asyncio.run(build(url))
    except (RedisError, OSError) as exc:
        print(f"shadowgate report: {exc}", file=sys.stderr)
        return 1
    return _write(text, args.out)


def _report_from_parquet(args: argparse.Namespace, loaded: LoadedConfig, since: float | None,
                         until: float | None, now: float) -> int:
    """``report --parquet DIR``: exit 2 when DIR holds no archive of the deployment, 1 when
    its files cannot be read. The deployment is taken as configured: a rollout's stage lives
    in Redis, and an archive may span several stages."""
    import asyncio

    from gateway.reports import render

    try:
        import duckdb
        import pyarrow

        from gateway.analysis.parquet import report_from_parquet
    except ImportError as exc:
        print(f"shadowgate report: --parquet needs pyarrow and duckdb ({exc}): pip install "
              "'shadowgate[parquet]'", file=sys.stderr)
        return 1
    try:
        report = asyncio.run(report_from_parquet(
            loaded, args.deployment, args.parquet, since=since, until=until,
            candidate=args.candidate, progress=True, now=now))
    except (OSError, duckdb.Error, pyarrow.ArrowException) as exc:  # first: pyarrow's
        print(f"shadowgate report: --parquet {args.parquet}: {exc}", file=sys.stderr)
        return 1  # ArrowInvalid (a file that is not Parquet) is a ValueError too
    except ValueError as exc:
        print(f"shadowgate report: --parquet: {exc}", file=sys.stderr)
        return 2
    return _write(render(report, args.format), args.out)


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    try:
        verdicts = run_demo(args.config, args.out, args.format, args.passes)
    except ConfigError as exc:
        print(f"shadowgate demo: {args.config}: invalid", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError) as exc:
        print(f"shadowgate demo: {exc}", file=sys.stderr)
        return 1
    for line in verdicts:
        print(line)
    print(f"report written to {args.out}", file=sys.stderr)
    return 0


def _write(text: str, out: str | None) -> int:
    """To stdout, or to a file written whole (a temporary name, then renamed)."""
    if out in (None, "-"):
        sys.stdout.write(text)
        return 0
    partial = f"{out}.partial"
    try:
        Path(partial).write_text(text, encoding="utf-8")
        os.replace(partial, out)
    except OSError as exc:
        print(f"shadowgate report: {exc}", file=sys.stderr)
        with contextlib.suppress(OSError):
            os.remove(partial)
        return 1
    print(f"wrote {out}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def redis_url(settings: Settings) -> Iterator[str]:
    """The configured Redis URL, or the embedded server under the state dir (started here
    when no gateway runs it, and then stopped again; never a running gateway's)."""
    if settings.redis_url is not None:
        yield settings.redis_url
        return
    from gateway.predlog.embedded import EmbeddedRedis

    embedded = EmbeddedRedis(settings.state_dir / "redis")
    embedded.start()
    try:
        yield embedded.url
    finally:
        if embedded.owned:
            embedded.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        logging.basicConfig(level=logging.WARNING)
        return cmd_validate(args.config, not args.no_models)
    if args.command == "export":
        return cmd_export(args)
    if args.command == "report":
        logging.basicConfig(level=logging.WARNING)
        return cmd_report(args)
    if args.command == "demo":
        logging.basicConfig(level=logging.WARNING)
        return cmd_demo(args)
    if args.command == "rollout":
        return cmd_rollout(args)
    if args.command == "reload":
        return cmd_reload(args)
    try:
        settings = Settings.from_env(config=args.config, host=args.host, port=args.port,
                                     workers=args.workers, redis_url=args.redis_url,
                                     state_dir=args.state_dir, log_level=args.log_level,
                                     grpc_port=args.grpc_port, access_log=args.access_log)
    except ValueError as exc:
        print(f"shadowgate: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return cmd_serve(settings)
