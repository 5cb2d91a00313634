"""Bearer tokens: who may call which endpoints, and under which name.

Scopes: ``inference`` (the V2 and /predict endpoints), ``feedback`` (POST /feedback),
``reports`` (GET /reports/...) and ``admin`` (/admin/...). Tokens come from
``SHADOWGATE_<SCOPE>_TOKEN`` (one token for one scope, named after its variable) and from
``SHADOWGATE_TOKENS_FILE``, a YAML file of named tokens::

    tokens:
      - name: labeling-service          # shown in logs, metrics and stored feedback ("by")
        sha256: 9f86d081884c7d65...     # hex SHA-256 of the token (or `token: <plain text>`)
        scopes: [feedback]

A presented token is hashed with SHA-256 and compared with ``hmac.compare_digest`` against
every configured token's hash, so the time taken says nothing about which token, or which
prefix, came close. When no token grants a scope: inference stays open; feedback and reports
are open only while the gateway listens on a loopback address (the README's demo) and refused
with a 403 saying how to configure a token otherwise; admin is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from starlette.requests import HTTPConnection

from gateway.errors import ConfigError, Forbidden, Unauthorized
from gateway.metrics import Metrics
from gateway.settings import Settings

AuthScope = Literal["inference", "feedback", "reports", "admin"]
SCOPES: tuple[AuthScope, ...] = ("inference", "feedback", "reports", "admin")
MIN_TOKEN_CHARS = 16
ANONYMOUS = "anonymous"
Policy = Literal["token", "open", "loopback", "disabled"]
_ENDPOINTS = {"inference": "inference", "feedback": "POST /feedback",
              "reports": "GET /reports", "admin": "the admin API"}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: a token's name, or ``anonymous`` where no token was needed."""

    name: str


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    digest: bytes  # SHA-256 of the token
    scopes: frozenset[str]


def digest(token: str | bytes) -> bytes:
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).digest()


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@:\-]{0,63}$")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    token: SecretStr | None = None
    scopes: Annotated[list[AuthScope], Field(min_length=1)]

    @model_validator(mode="after")
    def _one_secret(self) -> _Entry:
        if (self.sha256 is None) == (self.token is None):
            raise ValueError("give exactly one of sha256 or token")
        if self.token is not None and len(self.token.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(f"token: expected at least {MIN_TOKEN_CHARS} characters")
        return self


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: list[_Entry]


def load_tokens_file(path: Path) -> list[Token]:
    """The named tokens of a tokens file; raises ConfigError naming the file and key path
    (never the token)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: cannot read the tokens file: {exc}"]) from None
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([f"{path}: {'.'.join(str(p) for p in e['loc']) or 'file'}: "
                           f"{e['msg']}" for e in exc.errors()]) from None
    return [Token(e.name, bytes.fromhex(e.sha256) if e.sha256 else
                  digest(e.token.get_secret_value() if e.token else ""), frozenset(e.scopes))
            for e in parsed.tokens]


def tokens_from_settings(settings: Settings) -> list[Token]:
    """The ``SHADOWGATE_*_TOKEN`` variables and the tokens file; raises ConfigError on a short
    token, a name used twice or one token under two names."""
    tokens, errors = [], []
    for scope in SCOPES:
        secret: SecretStr | None = getattr(settings, f"{scope}_token")
        if secret is None:
            continue
        variable = f"SHADOWGATE_{scope.upper()}_TOKEN"
        value = secret.get_secret_value()
        if len(value) < MIN_TOKEN_CHARS:
            errors.append(f"{variable}: expected at least {MIN_TOKEN_CHARS} characters, got "
                          f"{len(value)}")
        tokens.append(Token(variable, digest(value), frozenset({scope})))
    if settings.tokens_file is not None:
        tokens += load_tokens_file(settings.tokens_file)
    names, digests = set(), set()
    for token in tokens:
        if token.name in names:
            errors.append(f"token name {token.name!r} is used twice")
        if token.digest in digests:
            errors.append(f"token {token.name!r}: the same token is configured under another "
                          "name; give each caller its own")
        names.add(token.name)
        digests.add(token.digest)
    if errors:
        raise ConfigError(errors)
    return tokens


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; any other address or name is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Guard:
    """Decides, per scope, whether a request may go on, and who made it."""

    def __init__(self, tokens: Sequence[Token], *, loopback: bool,
                 metrics: Metrics | None = None,
                 compare: Callable[[bytes, bytes], bool] = hmac.compare_digest) -> None:
        """``loopback``: the gateway listens on a loopback address only (feedback and
        reports may then go without a token when none is configured). ``compare`` is the
        constant-time comparison (injectable for tests)."""
        self._tokens = tuple(tokens)
        self._principals = {t.name: Principal(t.name) for t in self._tokens}
        self._compare = compare
        self._metrics = metrics
        self.loopback = loopback
        self.policies: dict[AuthScope, Policy] = {}
        for scope in SCOPES:
            if any(scope in t.scopes for t in self._tokens):
                self.policies[scope] = "token"
            elif scope == "inference":
                self.policies[scope] = "open"
            elif scope == "admin":
                self.policies[scope] = "disabled"
            else:
                self.policies[scope] = "loopback" if loopback else "disabled"
        # Read on every inference request: a plain attribute, False unless a token is set.
        self.inference_needs_token = self.policies["inference"] == "token"

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None = None) -> Guard:
        return cls(tokens_from_settings(settings), loopback=is_loopback(settings.host),
                   metrics=metrics)

    def check(self, scope: AuthScope, authorization: bytes | str | None) -> Principal:
        """The caller, from the ``Authorization`` header's value; raises Unauthorized (no
        token where one is needed) or Forbidden (wrong token, wrong scope, scope disabled)."""
        policy = self.policies[scope]
        if policy != "token":
            if policy == "disabled":
                self._refused(scope, "disabled")
                raise Forbidden(self._disabled_message(scope))
            return Principal(ANONYMOUS)
        if authorization is None:
            self._refused(scope, "missing")
            raise Unauthorized(f"{_ENDPOINTS[scope]} needs a bearer token with the {scope!r} "
                               "scope: send 'Authorization: Bearer <token>'")
        if isinstance(authorization, str):
            authorization = authorization.encode("latin-1")
        presented = authorization[7:].strip()
        if authorization[:7].lower() != b"bearer " or not presented:
            self._refused(scope, "malformed")
            raise Unauthorized("authorization: expected 'Bearer <token>'")
        wanted = hashlib.sha256(presented).digest()
        found: Token | None = None
        for token in self._tokens:  # every one, whichever matches: no early exit
            if self._compare(wanted, token.digest):
                found = token
        if found is None:
            self._refused(scope, "invalid")
            raise Forbidden("the bearer token is not valid here (unknown or revoked)")
        if scope not in found.scopes:
            self._refused(scope, "scope")
            raise Forbidden(f"token {found.name!r} does not grant the {scope!r} scope (it "
                            f"grants: {', '.join(sorted(found.scopes))})")
        return self._principals[found.name]

    def describe(self) -> list[tuple[bool, str]]:
        """(is a warning, sentence) per scope, for the start-up log."""
        notes = []
        for scope, policy in self.policies.items():
            names = sorted(t.name for t in self._tokens if scope in t.scopes)
            if policy == "token":
                notes.append((False, f"{_ENDPOINTS[scope]}: bearer token required "
                                     f"({', '.join(names)})"))
            elif policy == "open":
                notes.append((False, f"{_ENDPOINTS[scope]}: open (no {scope} token set)"))
            elif policy == "loopback":
                notes.append((False, f"{_ENDPOINTS[scope]}: open without a token because the "
                                     "gateway listens on a loopback address only"))
            elif scope != "admin":
                notes.append((True, self._disabled_message(scope)))
        return notes

    def _disabled_message(self, scope: AuthScope) -> str:
        how = (f"set SHADOWGATE_{scope.upper()}_TOKEN, or give a token the {scope!r} scope in "
               "SHADOWGATE_TOKENS_FILE")
        if scope == "admin":
            return f"the admin API is disabled: no admin token configured; {how}"
        return (f"{_ENDPOINTS[scope]} is disabled until a token is configured: the gateway "
                f"listens on a non-loopback address and no {scope} token is set; {how}")

    def _refused(self, scope: str, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.auth_refused.labels(scope, reason).inc()


def authorize(scope: AuthScope, conn: HTTPConnection) -> Principal:
    """The guard for routes: ``principal = authorize("reports", request)``.

    Raises Unauthorized (401, with ``WWW-Authenticate: Bearer``) or Forbidden (403); the
    app's error handler turns either into ``{"error": ...}``.
    """
    guard: Guard = conn.app.state.guard
    return guard.check(scope, conn.headers.get("authorization"))
