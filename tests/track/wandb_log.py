"""Read a W&B offline run file (``run-<id>.wandb``) with W&B's own record type.

The file is W&B's transaction log: a 7-byte header (``:W&B``, magic, version) and then
LevelDB-log framed chunks (CRC, length, type; 32 KiB blocks) of serialized
``wandb_internal_pb2.Record`` messages, the format ``wandb sync`` uploads. The Python
scanner W&B once shipped (``wandb.sdk.internal.datastore``) went with its Go core, so the
framing is read here and every record is parsed by W&B's protobuf.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7  # ":W&B" + magic (2 bytes) + version (1 byte)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def chunks(data: bytes) -> list[bytes]:
    assert data[:4] == b":W&B", "not a W&B transaction log"
    out, pos, pending = [], HEADER, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        body = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == FULL:
            out.append(body)
        elif kind == FIRST:
            pending = body
        elif kind == MIDDLE:
            pending += body
        elif kind == LAST:
            out.append(pending + body)
    return out


def read_run(path: Path) -> dict[str, Any]:
    """``history`` (one dict per logged row), ``config`` and ``summary`` of a run file."""
    from wandb.proto import wandb_internal_pb2 as pb

    history: list[dict[str, Any]] = []
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    run: dict[str, Any] = {}
    for raw in chunks(Path(path).read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            history.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                            for i in rec.history.item})
        elif kind == "config":
            for i in rec.config.update:
                config[i.key or "/".join(i.nested_key)] = json.loads(i.value_json)
        elif kind == "summary":
            for i in rec.summary.update:
                summary[i.key or "/".join(i.nested_key)] = json.loads(i.value_json)
        elif kind == "run":
            run = {"id": rec.run.run_id, "project": rec.run.project,
                   "entity": rec.run.entity, "name": rec.run.display_name}
            for i in rec.run.config.update:
                config[i.key or "/".join(i.nested_key)] = json.loads(i.value_json)
    return {"history": history, "config": config, "summary": summary, "run": run}
