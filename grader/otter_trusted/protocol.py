"""The results channel: one stdout line `OTTER-TRUSTED <hmac hex> <base64 json>`.

The HMAC-SHA256 is over the exact JSON bytes (the base64 payload decoded), keyed with the
per-job key that arrived on stdin, which the kernel's uid never sees.
"""
import base64
import hashlib
import hmac
import json

MARKER = "OTTER-TRUSTED"
MIN_KEY_BYTES = 16


class ProtocolError(Exception):
    pass


def read_key(stream):
    """First line of stdin: the key in hex (at least 16 bytes)."""
    line = stream.readline(4096).strip()
    try:
        key = bytes.fromhex(line.decode("ascii") if isinstance(line, bytes) else line)
    except ValueError:
        raise ProtocolError("key on stdin is not hex") from None
    if len(key) < MIN_KEY_BYTES:
        raise ProtocolError(f"key on stdin is shorter than {MIN_KEY_BYTES} bytes")
    return key


def encode_line(document, key):
    payload = json.dumps(document, sort_keys=True, separators=(",", ":"),
                         allow_nan=False).encode()
    mac = hmac.new(key, payload, hashlib.sha256).hexdigest()
    return f"{MARKER} {mac} {base64.b64encode(payload).decode()}\n"


def verify_line(line, key):
    """The document from a marker line, or ProtocolError if the line or its HMAC is bad."""
    parts = line.strip().split(" ")
    if len(parts) != 3 or parts[0] != MARKER:
        raise ProtocolError("not a results line")
    try:
        payload = base64.b64decode(parts[2], validate=True)
    except ValueError:
        raise ProtocolError("payload is not base64") from None
    want = hmac.new(key, payload, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, parts[1]):
        raise ProtocolError("HMAC mismatch")
    return json.loads(payload)
