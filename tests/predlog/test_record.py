from __future__ import annotations

import orjson
import pytest

from gateway.predlog.record import PairedRecord, decode, encode, keys_of


def record(request_id: str, deployment: str = "breast-cancer") -> PairedRecord:
    return PairedRecord(v=1, request_id=request_id, ts=1.5, deployment=deployment,
                        revision="r", key_hash=None, bucket=3, variant="champion", rows=1,
                        predictions=[], inputs=None)


@pytest.mark.parametrize("request_id", [
    "0123abcd", 'with"quote', "back\\slash", 'x","deployment":"evil', "ünï", "a" * 128])
def test_keys_of_reads_what_a_full_decode_reads(request_id: str) -> None:
    raw = encode(record(request_id, deployment='dep"x'))
    assert keys_of(raw) == ("dep\"x", request_id)
    assert decode(raw)["request_id"] == request_id


def test_keys_of_takes_other_key_orders() -> None:
    raw = orjson.dumps({"deployment": "d", "request_id": "r", "v": 1})
    assert keys_of(raw) == ("d", "r")


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1]", b'{"v":1,"request_id":"x"}',
                                 b'{"v":2,"request_id":"x","deployment":"d"}',
                                 b'{"v":1,"request_id":7,"deployment":"d"}'])
def test_keys_of_refuses_garbage(raw: bytes) -> None:
    with pytest.raises(ValueError):
        keys_of(raw)
