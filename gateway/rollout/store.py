"""Rollout state, decision history and the controller's lock, in Redis.

- state: ``sg:{deployment}:rollout``, JSON (gateway/rollout/state.py), replaced only by a
  compare-and-set on its ``version``, so two writers can never both move a stage;
- history: the stream ``sg:{deployment}:rollout:history``, one entry per recorded decision
  (trimmed to the newest ``HISTORY_MAX``);
- lock: ``sg:rollout:lock``, held by one replica's controller with an expiry and renewed while
  it runs; a controller that cannot renew stops acting.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from gateway.predlog import keys
from gateway.rollout.state import RolloutState

HISTORY_MAX = 10_000

# KEYS[1] state key; ARGV[1] expected version (0: no state yet), ARGV[2] new JSON.
_CAS = """
local raw = redis.call('GET', KEYS[1])
local have = 0
if raw then have = cjson.decode(raw)['version'] end
if tonumber(have) ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""
# KEYS[1] lock; ARGV[1] owner, ARGV[2] ttl ms. Take it if free, extend it if ours.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


async def load_state(redis: Redis, deployment: str) -> RolloutState | None:
    raw = await redis.get(keys.rollout(deployment))
    if raw is None:
        return None
    try:
        return RolloutState.from_json(raw)
    except (ValueError, TypeError):
        return None  # unreadable: treated as not started (the next save replaces it)


async def load_states(redis: Redis, deployments: list[str]) -> dict[str, RolloutState]:
    """The states of several deployments in one round trip (the routing poll)."""
    if not deployments:
        return {}
    values = await redis.mget([keys.rollout(d) for d in deployments])
    out = {}
    for deployment, raw in zip(deployments, values, strict=True):
        if raw is not None:
            try:
                out[deployment] = RolloutState.from_json(raw)
            except (ValueError, TypeError):
                continue
    return out


async def stream_end(redis: Redis, deployment: str) -> str:
    """The last id of the deployment's pairs stream ("0-0" when empty): a stage's records
    are the ones written after it."""
    entries = await redis.xrevrange(keys.pairs(deployment), count=1) or []
    if not entries:
        return "0-0"
    raw = entries[0][0]
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def save_state(redis: Redis, deployment: str, state: RolloutState,
                     expected_version: int) -> bool:
    """Write ``state`` if the stored one is still at ``expected_version`` (0: none)."""
    done = await redis.eval(_CAS, 1, keys.rollout(deployment), expected_version,
                            state.to_json())
    return bool(done)


async def record(redis: Redis, deployment: str, entry: dict[str, Any]) -> str:
    """Append a decision to the history; returns its stream id."""
    entry_id = await redis.xadd(keys.rollout_history(deployment), {b"d": orjson.dumps(entry)},
                                maxlen=HISTORY_MAX, approximate=True)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


async def history(redis: Redis, deployment: str, count: int = 100) -> list[dict[str, Any]]:
    """The newest ``count`` decisions, oldest first."""
    entries = await redis.xrevrange(keys.rollout_history(deployment), count=count) or []
    out = []
    for _, fields in reversed(entries):
        raw = (fields or {}).get(b"d")
        if raw is not None:
            out.append(orjson.loads(raw))
    return out


class LeaderLock:
    """One owner at a time, for ``ttl_s`` after its last renewal."""

    def __init__(self, redis: Redis, owner: str, ttl_s: float = 10.0,
                 key: str | None = None) -> None:
        self.redis = redis
        self.owner = owner
        self.ttl_ms = int(ttl_s * 1000)
        self.key = key or keys.rollout_lock()
        self.held = False

    async def acquire(self) -> bool:
        """Take or renew the lock; False (and ``held`` False) when another owner has it."""
        self.held = bool(await self.redis.eval(_ACQUIRE, 1, self.key, self.owner,
                                               self.ttl_ms))
        return self.held

    async def release(self) -> None:
        if self.held:
            await self.redis.eval(_RELEASE, 1, self.key, self.owner)
            self.held = False

    async def holder(self) -> str | None:
        raw = await self.redis.get(self.key)
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)
