"""Read the metric names an offline W&B run recorded, straight from its ``run-*.wandb`` file.

The file is wandb's transaction log: a 7-byte header (``:W&B``, magic, version), then LevelDB-style chunks (4-byte
checksum, 2-byte little-endian length, 1-byte type: 1 full, 2 first, 3 middle, 4 last) in 32 KiB blocks, each record
a ``wandb_internal_pb2.Record`` protobuf; ``history`` records hold the logged metrics.
"""

from pathlib import Path

BLOCK, HEADER = 32768, 7


def records(path: Path) -> list[bytes]:
    data, pos, parts, out = path.read_bytes(), HEADER, [], []
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # the rest of a block too short for a chunk header is padding
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        parts.append(data[pos + HEADER : pos + HEADER + length])
        pos += HEADER + length
        if kind in (1, 4):
            out.append(b"".join(parts))
            parts = []
    return out


def history_keys(run_dir: Path) -> set[str]:
    """Every metric key in the history records of the offline run in ``run_dir`` (``offline-run-*``)."""
    from wandb.proto import wandb_internal_pb2 as pb

    keys = set()
    for raw in records(next(run_dir.glob("run-*.wandb"))):
        record = pb.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            keys |= {item.key or "/".join(item.nested_key) for item in record.history.item}
    return keys
