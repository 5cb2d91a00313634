"""The command line: ``validate``, ``serve`` end to end over real HTTP, and Settings."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli import check_access, main
from gateway.settings import Settings
from tests.helpers import (
    MODEL_NAMES,
    MODELS,
    ROOT,
    GatewayProcess,
    LiveServer,
    config,
    free_port,
    poll,
    v2_body,
)

EXAMPLE = ROOT / "config" / "example.yaml"
CANARY = ROOT / "config" / "canary-demo.yaml"


def write(tmp_path: Path, data: Any, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


# -- validate ----------------------------------------------------------------------------------

def test_validate_example_in_a_subprocess() -> None:
    done = run_cli("validate", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert f"{EXAMPLE}: valid" in done.stdout
    assert "3 model(s)" in done.stdout and "deployments: breast-cancer" in done.stdout


def test_validate_failure_in_a_subprocess(tmp_path: Path) -> None:
    path = write(tmp_path, config([{"name": "d", "champion": "bc-logreg",
                                    "canaries": [{"model": "bc-gbt", "weight": 150}]}]))
    done = run_cli("validate", str(path))
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"{path}: invalid" in done.stderr
    assert "deployments[0].canaries[0].weight" in done.stderr


@pytest.mark.parametrize("path", [EXAMPLE, CANARY])
def test_validate_bundled_configs(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"{path}: valid (revision ")
    assert out.err == ""


def dep(**fields: Any) -> dict[str, Any]:
    return {"name": "d", "champion": "bc-logreg", **fields}


@pytest.mark.parametrize(("data", "words"), [
    (config([dep(champion="bc-xgb")]), ("deployments[0].champion", "'bc-xgb'", "not declared")),
    (config([dep(canaries=[{"model": "bc-gbt", "weight": 100.5}])]),
     ("deployments[0].canaries[0].weight", "100")),
    (config([dep(canaries=[{"model": "bc-gbt", "weight": 0.125}])]),
     ("deployments[0].canaries[0].weight", "multiple of 0.01")),
    (config([dep(shadows=[{"model": "bc-rf", "sampel_percent": 5}])]),
     ("deployments[0].shadows[0].sampel_percent", "Extra inputs")),
    (config([dep()], colour="red"), ("colour", "Extra inputs")),
    (config([dep(name="bc-rf")]), ("deployments[0].name", "also a model name")),
    ("models: [\n  {name: bc-logreg\n", ("invalid YAML", "line")),
])
def test_validate_reports_key_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    data: Any, words: tuple[str, ...]) -> None:
    path = write(tmp_path, data)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: invalid\n")
    for word in words:
        assert word in err, (word, err)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name in MODEL_NAMES:
        shutil.copytree(MODELS / name, tmp_path / "models" / name)
    return tmp_path / "models"


def test_validate_loads_the_models(tmp_path: Path, repo: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "bc-gbt" / "1" / "model.onnx").write_bytes(b"\x08\x07garbage")
    (repo / "bc-rf" / "1" / "model.onnx").unlink()
    path = write(tmp_path, config(model_repository=str(repo)))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{repo / 'bc-gbt' / '1' / 'model.onnx'}: cannot load ONNX model" in err
    assert f"{repo / 'bc-rf' / '1' / 'model.onnx'}: model file not found" in err
    # --no-models checks the file only
    assert main(["validate", "--no-models", str(path)]) == 0


def test_validate_catches_a_stale_card(tmp_path: Path, repo: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    card = repo / "bc-logreg" / "1" / "card.json"
    card.write_text(card.read_text().replace('"sha256": "5', '"sha256": "6'))
    path = write(tmp_path, config(model_repository=str(repo)))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "models[0] (bc-logreg:1)" in err and str(card) in err and "does not match" in err


def test_validate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read config" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["frobnicate"], ["serve", "--port", "eighty"], ["validate"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    assert "usage: shadowgate" in capsys.readouterr().err


def test_serve_with_a_bad_environment_exits_2(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SHADOWGATE_WORKERS", "many")
    assert main(["serve", "--config", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "SHADOWGATE_WORKERS: expected an integer, got 'many'" in err


def test_serve_with_an_invalid_config_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, config([dep(champion="ghost")]))
    done = run_cli("serve", "--config", str(path), "--port", "1")
    assert done.returncode == 1
    assert "deployments[0].champion" in done.stderr


def test_serve_says_at_start_up_what_is_open_and_what_is_disabled(
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """The decision for a gateway without tokens, tested without binding anything."""
    with caplog.at_level(logging.INFO, logger="gateway.cli"):
        assert check_access(Settings(host="0.0.0.0"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert any("POST /feedback is disabled until a token is configured" in w and
               "non-loopback" in w and "SHADOWGATE_FEEDBACK_TOKEN" in w for w in warnings)
    assert any("GET /reports is disabled" in w for w in warnings)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gateway.cli"):
        assert check_access(Settings(host="127.0.0.1"))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("open without a token because the gateway listens on a loopback address" in
               r.getMessage() for r in caplog.records)
    bad = write(tmp_path, {"tokens": [{"name": "x", "token": "short", "scopes": ["feedback"]}]})
    assert not check_access(Settings(tokens_file=bad))
    assert "at least 16 characters" in capsys.readouterr().err


def test_serve_with_unusable_tokens_exits_1_before_listening() -> None:
    done = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(EXAMPLE),
                           "--port", "1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False,
                          env={**os.environ, "SHADOWGATE_FEEDBACK_TOKEN": "tooshort"})
    assert done.returncode == 1
    assert "SHADOWGATE_FEEDBACK_TOKEN: expected at least 16 characters, got 8" in done.stderr
    assert "tooshort" not in done.stderr + done.stdout


# -- serve, end to end -------------------------------------------------------------------------

def test_serve_example_end_to_end(tmp_path: Path, holdout: list[dict[str, Any]]) -> None:
    rows = [r["features"] for r in holdout]
    session = ort.InferenceSession(str(MODELS / "bc-logreg" / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    want_label, want_proba = session.run(None, {"input": np.asarray(rows, np.float32)})
    state = tmp_path / "state"
    grpc_port = free_port()
    env = {"SHADOWGATE_STATE_DIR": str(state), "SHADOWGATE_LOG": "memory"}
    with GatewayProcess(Path("config/example.yaml"), env,
                        ["--grpc-port", str(grpc_port)]) as gw, \
            httpx.Client(base_url=gw.url, timeout=30) as client:
        r = client.post("/v2/models/breast-cancer/infer", json=v2_body(rows, id="all"))
        assert r.status_code == 200, r.text
        assert r.headers["x-shadowgate-model"] == "bc-logreg"
        assert len(r.headers["x-request-id"]) == 32
        body = r.json()
        assert (body["model_name"], body["id"]) == ("breast-cancer", "all")
        np.testing.assert_array_equal(body["outputs"][0]["data"], want_label)
        np.testing.assert_allclose(np.reshape(body["outputs"][1]["data"], (-1, 2)), want_proba,
                                   rtol=0, atol=1e-6)

        r = client.post("/predict", json={"instances": rows[:3]},
                        headers={"x-request-id": "e2e-1"})
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == "e2e-1"
        assert [p["label"] for p in r.json()["predictions"]] == \
            [("malignant", "benign")[i] for i in want_label[:3]]

        r = client.post("/v2/models/breast-cancer/infer", content=b"{",
                        headers={"content-type": "application/json"})
        assert r.status_code == 400 and "malformed JSON" in r.json()["error"]

        # V2 gRPC on its own port, served by the same process (and counted alike).
        with contextlib.closing(grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
                                ) as grpc:
            inp = grpcclient.InferInput("input", [1, 30], "FP32")
            inp.set_data_from_numpy(np.asarray(rows[:1], np.float32))
            result = grpc.infer("breast-cancer", [inp])
            np.testing.assert_array_equal(result.as_numpy("label"), want_label[:1])

        def metrics() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            text = client.get("/metrics").text
            return {(s.name, tuple(sorted(s.labels.items()))): s.value
                    for f in text_string_to_metric_families(text) for s in f.samples}

        logreg = (("model_name", "bc-logreg"), ("model_version", "1"))
        m = metrics()
        assert m[("model_infer_request_success_total", logreg)] == 3
        # Refused before routing: counted under the deployment, not its champion.
        refused = (("model_name", "breast-cancer"), ("model_version", ""),
                   ("reason", "bad_request"))
        assert m[("model_infer_request_failure_total", refused)] == 1
        assert ("model_infer_request_failure_total", (*logreg, ("reason", "bad_request"))) not in m
        assert m[("nv_inference_request_success", (("model", "breast-cancer"), ("version", "")))] \
            == 3
        assert m[("nv_inference_request_failure", (("model", "breast-cancer"), ("version", "")))] \
            == 1
        assert m[("model_infer_request_duration_seconds_count", logreg)] == 3
        assert m[("model_infer_compute_duration_seconds_count", logreg)] == 3
        assert m[("rest_server_requests_in_progress", ())] == 0

        # Both shadows of example.yaml answer every request, off the request path.
        def shadows_done() -> bool:
            m = metrics()
            return all(m.get(("shadowgate_shadow_results_total",
                              (("model_name", n), ("model_version", "1"), ("status", "ok")))
                             ) == 3 for n in ("bc-gbt", "bc-rf"))

        poll(shadows_done, 30, "both shadows to answer every request")
    out = gw.stop()
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught: exit by signal 15.
    assert gw.proc is not None and gw.proc.returncode in (0, -15), out
    assert "Application shutdown complete" in out
    assert "Traceback" not in out and " ERROR " not in out
    assert not (state / "redis").exists()  # SHADOWGATE_LOG=memory: no Redis was started


@pytest.mark.slow
def test_serve_with_workers_shares_the_grpc_port(tmp_path: Path) -> None:
    """Every worker binds the gRPC port (SO_REUSEPORT); Triton's counters add up over them."""
    grpc_port = free_port()
    env = {"SHADOWGATE_STATE_DIR": str(tmp_path / "state"), "SHADOWGATE_LOG": "memory"}
    with GatewayProcess(Path("config/example.yaml"), env,
                        ["--workers", "2", "--grpc-port", str(grpc_port)]) as gw:
        x = np.zeros((1, 30), np.float32)
        for _ in range(6):  # a connection each: the kernel spreads them over the workers
            with contextlib.closing(grpcclient.InferenceServerClient(
                    f"127.0.0.1:{grpc_port}")) as grpc:
                inp = grpcclient.InferInput("input", [1, 30], "FP32")
                inp.set_data_from_numpy(x)
                assert grpc.infer("breast-cancer", [inp]).as_numpy("label") is not None
        text = httpx.get(f"{gw.url}/metrics", timeout=10).text
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(text) for s in f.samples}
        assert samples[("nv_inference_request_success",
                        (("model", "breast-cancer"), ("version", "")))] == 6
    out = gw.stop()
    assert out.count("V2 gRPC listening on") == 2, out
    assert "Traceback" not in out


# -- Settings ----------------------------------------------------------------------------------

def test_settings_defaults() -> None:
    s = Settings.from_env(env={})
    assert s == Settings()
    assert (s.host, s.port, s.workers, s.log, s.max_body_bytes) == ("127.0.0.1", 8000, 1,
                                                                   "redis", None)


def test_settings_read_every_kind_of_variable() -> None:
    s = Settings.from_env(env={
        "SHADOWGATE_CONFIG": "/etc/sg.yaml", "SHADOWGATE_HOST": "0.0.0.0",
        "SHADOWGATE_PORT": "9001", "SHADOWGATE_WORKERS": "4",
        "SHADOWGATE_REDIS_URL": "redis://r:6379/2", "SHADOWGATE_STATE_DIR": "/var/sg",
        "SHADOWGATE_LOG": "off", "SHADOWGATE_MAX_BODY_BYTES": "65536",
        "SHADOWGATE_LOG_LEVEL": "debug", "SHADOWGATE_FLUSH_INTERVAL_S": "0.25",
        "SHADOWGATE_SPOOL_MAX_BYTES": "1048576", "SHADOWGATE_SHUTDOWN_TIMEOUT_S": "3",
        "OTHER_PORT": "1",
    })
    assert s == Settings(config=Path("/etc/sg.yaml"), host="0.0.0.0", port=9001, workers=4,
                         redis_url="redis://r:6379/2", state_dir=Path("/var/sg"), log="off",
                         max_body_bytes=65536, log_level="debug", flush_interval_s=0.25,
                         spool_max_bytes=1048576, shutdown_timeout_s=3.0)
    assert isinstance(s.port, int) and isinstance(s.flush_interval_s, float)


def test_flags_override_the_environment() -> None:
    env = {"SHADOWGATE_PORT": "9001", "SHADOWGATE_HOST": "0.0.0.0"}
    s = Settings.from_env(env=env, port=7000, host=None, state_dir=Path("/x"))
    assert (s.port, s.host, s.state_dir) == (7000, "0.0.0.0", Path("/x"))


def test_grpc_and_access_log_settings() -> None:
    assert (Settings().grpc_port, Settings().access_log, Settings().access_log_sample) == (
        8001, "off", 1.0)
    for off in ("off", "OFF", "0"):
        assert Settings.from_env(env={"SHADOWGATE_GRPC_PORT": off}).grpc_port == 0
    s = Settings.from_env(env={"SHADOWGATE_GRPC_PORT": "9001", "SHADOWGATE_ACCESS_LOG": "json",
                               "SHADOWGATE_ACCESS_LOG_SAMPLE": "0.01"}, grpc_port="off")
    assert (s.grpc_port, s.access_log, s.access_log_sample) == (0, "json", 0.01)
    with pytest.raises(ValueError, match="SHADOWGATE_ACCESS_LOG: expected one of off, on, "
                                         "json, got 'yes'"):
        Settings.from_env(env={"SHADOWGATE_ACCESS_LOG": "yes"})
    with pytest.raises(ValueError, match="SHADOWGATE_GRPC_PORT: expected an integer"):
        Settings.from_env(env={"SHADOWGATE_GRPC_PORT": "grpc"})


def test_empty_variables_are_ignored() -> None:
    assert Settings.from_env(env={"SHADOWGATE_PORT": "", "SHADOWGATE_LOG": ""}) == Settings()


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("PORT", "80a", "an integer"), ("WORKERS", "1.5", "an integer"),
    ("MAX_BODY_BYTES", "4MB", "an integer"), ("FLUSH_INTERVAL_S", "fast", "a number"),
    ("WORKERS", "0", "an integer greater than or equal to 1"),
    ("FLUSH_INTERVAL_S", "-1", "a number greater than 0"),
])
def test_bad_numbers_are_explained(name: str, raw: str, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        Settings.from_env(env={f"SHADOWGATE_{name}": raw})
    assert str(info.value) == f"SHADOWGATE_{name}: expected {expected}, got {raw!r}"


def test_bad_log_mode_is_explained() -> None:
    with pytest.raises(ValueError, match="SHADOWGATE_LOG: expected one of redis, memory, off, "
                                         "got 'file'"):
        Settings.from_env(env={"SHADOWGATE_LOG": "file"})


def test_a_bad_flag_is_named_as_the_flag() -> None:
    with pytest.raises(ValueError) as info:
        Settings.from_env(env={}, port=70000)
    assert str(info.value) == "port: expected an integer less than or equal to 65535, got 70000"


def test_security_and_http_settings_from_the_environment() -> None:
    s = Settings.from_env(env={
        "SHADOWGATE_FEEDBACK_TOKEN": "a-feedback-token-0123", "SHADOWGATE_TOKENS_FILE": "/t.yaml",
        "SHADOWGATE_FEEDBACK_ORPHAN_WINDOW_S": "60", "SHADOWGATE_FEEDBACK_RATE": "50",
        "SHADOWGATE_FEEDBACK_BURST": "500", "SHADOWGATE_MAX_HEADER_BYTES": "16384",
        "SHADOWGATE_HEADER_TIMEOUT_S": "5", "SHADOWGATE_BODY_TIMEOUT_S": "20",
        "SHADOWGATE_MAX_CONNECTIONS": "100", "SHADOWGATE_KEEP_ALIVE_S": "2",
        "SHADOWGATE_DRAIN_S": "15"})
    assert s.feedback_token is not None
    assert s.feedback_token.get_secret_value() == "a-feedback-token-0123"
    assert "a-feedback-token" not in repr(s)  # never in a log line or a traceback
    assert (s.tokens_file, s.feedback_orphan_window_s, s.feedback_rate, s.feedback_burst) == (
        Path("/t.yaml"), 60.0, 50.0, 500)
    assert (s.max_header_bytes, s.header_timeout_s, s.body_timeout_s, s.max_connections,
            s.keep_alive_s, s.drain_s) == (16384, 5.0, 20.0, 100, 2.0, 15.0)
    defaults = Settings()
    assert (defaults.feedback_orphan_window_s, defaults.feedback_rate, defaults.feedback_burst,
            defaults.max_header_bytes, defaults.header_timeout_s, defaults.body_timeout_s,
            defaults.max_connections, defaults.keep_alive_s, defaults.drain_s) == (
        600.0, 2000.0, 20_000, 65536, 10.0, 30.0, 2048, 5.0, 0.0)


def test_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWGATE_PORT", "8123")
    assert Settings.from_env().port == 8123


# -- validate with remote models -------------------------------------------------------------

def remote_config(url: str, **remote: Any) -> dict[str, Any]:
    return config([{"name": "d", "champion": "bc-logreg", "shadows": [{"model": "far"}]}],
                  models=[{"name": "bc-logreg"},
                          {"name": "far", "remote": {"url": url, "model": "bc-logreg",
                                                     "timeout_ms": 5000, **remote}}])


def test_validate_reports_a_remote_that_answers(tmp_path: Path) -> None:
    from tests.traffic.v2_server import MiniV2

    with LiveServer(MiniV2().app()) as live:
        path = write(tmp_path, remote_config(live.url, classifier={
            "class_labels": ["malignant", "benign"]}))
        done = run_cli("validate", str(path))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{path}: valid")
    assert lines[1] == (f"  models[1] (far:1): remote {live.url}/v2/models/bc-logreg answered: "
                        "platform (not given); inputs (none listed); outputs (none listed); "
                        "class labels (none listed)")
    assert lines[2].startswith("    warning: inputs unknown: ")
    assert lines[3].startswith("    warning: outputs unknown: ")


def test_validate_reports_a_remote_that_does_not_answer(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    path = write(tmp_path, remote_config(url))
    done = run_cli("validate", str(path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "Event loop is closed" not in done.stderr
    assert done.stderr.startswith(f"{path}: invalid\n")
    assert f"models[1] (far:1): remote {url}/v2/models/bc-logreg did not answer: ConnectError" \
        in done.stderr


def test_validate_reports_a_remote_that_disagrees_with_the_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.traffic.test_remote import upstream_app

    with LiveServer(upstream_app([{"name": "bc-logreg"}])) as live:
        good = write(tmp_path, remote_config(live.url, card=str(
            MODELS / "bc-logreg" / "1" / "card.json")), "good.yaml")
        bad = write(tmp_path, remote_config(live.url, classifier={
            "class_labels": ["benign", "malignant"]}, outputs=[
            {"name": "label", "datatype": "INT32", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]), "bad.yaml")
        assert main(["validate", str(good)]) == 0
        out = capsys.readouterr().out
        assert "answered: platform onnxruntime_onnx; inputs [input FP32 [-1, 30]]; " in out
        assert "class labels ['malignant', 'benign']" in out and "warning" not in out
        assert main(["validate", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "models[1] (far:1): remote" in out  # it answered
    assert err.startswith(f"{bad}: invalid\n")
    assert "does not match the config: outputs: the config declares [label INT32 [-1], " in err
    assert ("does not match the config: class labels: the config declares ['benign', "
            "'malignant'], the remote reports ['malignant', 'benign']") in err
