#!/usr/bin/env python3
"""Generate golden message bodies with the real Python Kombu.

kelp's serialization and compression tests decode these files and compare
the result with the expected values recorded in manifest.json, so that
wire compatibility with Kombu is checked against Kombu's own output.

Usage (needs kombu, msgpack, pyyaml, brotli and, before Python 3.14,
backports.zstd):

    python scripts/gen_kombu_fixtures.py [OUTPUT_DIR]

OUTPUT_DIR defaults to kelp/tests/fixtures/kombu next to this script's
repository root. Output is deterministic for a given set of library versions.
"""

import base64
import json
import os
import sys
import uuid
from datetime import date, datetime, time, timezone
from decimal import Decimal

import kombu
from kombu import compression, serialization

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "kelp", "tests", "fixtures", "kombu")

# Plain data every serializer can carry.
BASIC = {
    "name": "kelp",
    "unicode": "h\u00e9llo w\u00f6rld \u2603 \U0001f600",
    "int": 42,
    "negative": -7,
    "big": 18446744073709551615,
    "float": 2.5,
    "small": 1.5e-07,
    "large": 1e16,
    "true": True,
    "false": False,
    "none": None,
    "list": [1, "two", 3.0, [4, {"five": 5}]],
    "nested": {"a": {"b": {"c": [True, None]}}},
    "empty_list": [],
    "empty_map": {},
    "special": 'line\nbreak "quoted" \\ tab\t del\x7f ctrl\x01',
    # Strings that YAML 1.1 would read as other types unless quoted.
    "tricky": ["yes", "no", "on", "off", "~", "null", "1:30", "017", "0x1F",
               "2024-01-02", "1e5", "", " lead", "#hash", "- dash"],
}

# Python bytes: msgpack bin, YAML !!binary, Kombu JSON bytes/base64.
BINARY = {
    "text_bytes": b"hello",
    "binary_bytes": b"\x00\x01\xfe\xff",
    "label": "blob",
}

# Kombu's JSON type extensions.
EXTENSIONS = {
    "aware": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    "naive": datetime(2024, 1, 2, 3, 4, 5, 678901),
    "day": date(2024, 1, 2),
    "clock": time(3, 4, 5, 6),
    "price": Decimal("3.14159"),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "utf8": b"caf\xc3\xa9",
    "raw": b"\x00\xff\xfe",
    "list": [Decimal("1.10"), date(1999, 12, 31)],
}


def expected(value):
    """JSON form of a decoded value; non-JSON types as {"$<type>": text}."""
    if isinstance(value, dict):
        return {str(k): expected(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [expected(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, uuid.UUID):
        return {"$uuid": value.hex}
    return value


def to_bytes(body):
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    os.makedirs(out, exist_ok=True)
    fixtures = []

    def add(name, content_type, content_encoding, body, compression_type=None):
        body = to_bytes(body)
        decoded = body
        if compression_type:
            decoded = compression.decompress(body, compression_type)
        value = serialization.loads(
            decoded, content_type, content_encoding,
            accept=[content_type] if content_type else None,
        )
        file_name = name + ".bin"
        with open(os.path.join(out, file_name), "wb") as f:
            f.write(body)
        fixtures.append({
            "name": name,
            "file": file_name,
            "content_type": content_type,
            "content_encoding": content_encoding,
            "compression": compression_type,
            "expected": expected(value),
        })

    for ser in ("json", "msgpack", "yaml"):
        ctype, enc, body = serialization.dumps(BASIC, serializer=ser)
        add(ser + "_basic", ctype, enc, body)
    for ser in ("msgpack", "yaml", "json"):
        ctype, enc, body = serialization.dumps(BINARY, serializer=ser)
        add(ser + "_binary", ctype, enc, body)
    ctype, enc, body = serialization.dumps(EXTENSIONS, serializer="json")
    add("json_extensions", ctype, enc, body)
    ctype, enc, body = serialization.dumps("h\u00e9llo \U0001f600")
    add("text_str", ctype, enc, body)
    ctype, enc, body = serialization.dumps(b"\x00\x01raw\xff", serializer="raw")
    add("raw_bytes", ctype, enc, body)
    ctype, enc, body = serialization.dumps("raw text", serializer="raw")
    add("raw_str", ctype, enc, body)

    ctype, enc, body = serialization.dumps(BASIC, serializer="json")
    for method in compression.encoders():
        packed, mime = compression.compress(to_bytes(body), method)
        short = mime.split("/")[-1].replace("x-", "")
        add("compressed_" + short, ctype, enc, packed, mime)

    manifest = {
        "generator": "scripts/gen_kombu_fixtures.py",
        "kombu_version": kombu.__version__,
        "python_version": sys.version.split()[0],
        "fixtures": fixtures,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=False)
        f.write("\n")
    print("wrote %d fixtures to %s" % (len(fixtures), out))


if __name__ == "__main__":
    main()
