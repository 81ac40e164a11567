"""arq job (de)serialization with msgspec MessagePack, never pickle.

Pickle from Redis is code execution for whoever can write to Redis. arq's payloads are
plain dicts of str/int/bytes; an exception stored as a failed job's result is kept as
its text.
"""

from typing import Any

import msgspec


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {obj}"
    raise NotImplementedError(f"cannot serialize {type(obj).__name__} in an arq job")


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_decoder = msgspec.msgpack.Decoder(dict[str, Any])


def serialize(payload: dict[str, Any]) -> bytes:
    return _encoder.encode(payload)


def deserialize(data: bytes) -> dict[str, Any]:
    return _decoder.decode(data)
