"""The worker's entitlement store on disk: RocksDB through rocksdict (layout: worker.store).

- One store per worker process, under `<state dir>/stores/<namespace>/<slot>`: the first slot
  whose RocksDB lock this process gets, so two workers on one host never share one, and a
  worker restarted after a crash takes the slot its predecessor left.
- The live path stages each batch (`Staged`) and writes it, with each partition's checkpoint,
  in one write batch only after the batch's Kafka transaction committed (`apply`). A batch
  whose transaction aborted leaves no trace, so the checkpoint never runs ahead of the group's
  committed offset: a restart replays [checkpoint, committed) and reads on from there.
- A restore (worker.restore) writes straight to the database, chunk by chunk, each chunk with
  its checkpoint, for partitions that are not owned yet.
- A store that cannot be opened (corrupt, another format, another topic) is moved aside and
  rebuilt from the topic, with one WARNING line saying so.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Iterator

from rocksdict import DBCompressionType, Options, Rdict, WriteBatch

from streams.decide.admit import Admission
from streams.worker import store as layout
from streams.worker.store import Selector

log = logging.getLogger(__name__)

SLOTS = 64
CACHE_MB = 32


class StoreError(Exception):
    pass


def _options() -> Options:
    o = Options(raw_mode=True)
    o.create_if_missing(True)
    o.set_compression_type(DBCompressionType.lz4())
    o.set_write_buffer_size(32 << 20)
    o.set_max_write_buffer_number(2)
    o.set_max_background_jobs(2)
    o.set_keep_log_file_num(2)
    o.set_max_open_files(256)
    return o


class Staged:
    """One batch's writes, not yet in the database: read back by the batch itself."""

    def __init__(self) -> None:
        self.batch = WriteBatch(raw_mode=True)
        self.seen: dict[bytes, bytes | None] = {}   # state key -> blob (None: deleted)
        self.delta: dict[int, int] = {}             # partition -> states added (removed: negative)


class StateStore:
    """entitlement_id -> packed state for this worker's partitions (`owned`), on disk."""

    def __init__(self, root: Path, admission: Admission, topic: str):
        self.root = root
        self.admission = admission
        self.topic = topic
        self.owned: set[int] = set()
        self.path: Path | None = None
        self.db: Rdict | None = None
        self._checkpoints: dict[int, tuple[int, int, int]] = {}   # as stored (layout.unpack_checkpoint)

    # ------------------------------------------------------------------ open / close

    def open(self) -> Path:
        """Open the first free slot (rebuilding a store that cannot be used); returns its path."""
        self.root.mkdir(parents=True, exist_ok=True)
        for slot in range(SLOTS):
            path = self.root / str(slot)
            try:
                self.db = self._open(path)
            except _Locked:
                continue
            self.path = path
            self._checkpoints = self._read_checkpoints(self.db)
            return path
        raise StoreError(f"every store slot under {self.root} is held by a running worker")

    def _open(self, path: Path) -> Rdict:
        fresh = not (path / "CURRENT").exists()
        try:
            db = Rdict(str(path), _options())
        except Exception as exc:  # noqa: BLE001 - rocksdict raises plain Exception
            text = str(exc)
            if "lock" in text.lower():
                raise _Locked() from None
            return self._rebuild(path, f"cannot be opened ({text[:200]})")
        meta = db.get(layout.META)
        want = layout.FORMAT + b" " + self.topic.encode()
        if fresh or meta is None:
            if not fresh:
                log.warning("entitlement store %s holds no format record: rebuilding it from %s", path, self.topic)
                db.close()
                return self._rebuild(path, None)
            db.put(layout.META, want)
            log.info("entitlement store %s is new: every partition assigned is restored from %s", path, self.topic)
            return db
        if meta != want:
            db.close()
            return self._rebuild(path, f"holds {meta.decode(errors='replace')!r}, not {want.decode()!r}")
        cps = self._read_checkpoints(db)
        log.info("entitlement store %s opened: %d states, checkpoints %s", path, sum(c[2] for c in cps.values()),
                 ", ".join(f"p{p}@{c[0]}" for p, c in sorted(cps.items())) or "none")
        return db

    def _rebuild(self, path: Path, why: str | None) -> Rdict:
        if why:
            log.warning("entitlement store %s %s: moved aside and rebuilt from %s", path, why, self.topic)
        aside = path.with_name(path.name + ".broken")
        shutil.rmtree(aside, ignore_errors=True)
        if path.exists():
            path.rename(aside)
        db = Rdict(str(path), _options())
        db.put(layout.META, layout.FORMAT + b" " + self.topic.encode())
        shutil.rmtree(aside, ignore_errors=True)
        return db

    @staticmethod
    def _read_checkpoints(db: Rdict) -> dict[int, tuple[int, int, int]]:
        cps = {}
        for k, v in db.items(from_key=b"m"):
            if not k.startswith(b"m"):
                break
            cps[int.from_bytes(k[1:3], "big")] = layout.unpack_checkpoint(v)
        return cps

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    @property
    def _db(self) -> Rdict:
        if self.db is None:
            raise StoreError("the entitlement store is not open")
        return self.db

    def __len__(self) -> int:
        """States stored for the owned partitions (counted in their checkpoints)."""
        cps = self._checkpoints
        return sum(cps[p][2] for p in list(self.owned) if p in cps)

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self, partition: int) -> tuple[int, int, int] | None:
        """(next offset, written at ms, states) of a partition, or None when it was never stored."""
        return self._checkpoints.get(partition)

    def drop_partition(self, partition: int) -> None:
        db = self._db
        for prefix in (b"s", b"x", b"m"):
            db.delete_range(*layout.partition_range(prefix, partition))
        self._checkpoints.pop(partition, None)

    # ------------------------------------------------------------------ the live path

    def stage(self) -> Staged:
        return Staged()

    def get(self, partition: int, key: bytes, staged: Staged | None = None) -> bytes | None:
        sk = layout.state_key(partition, key)
        if staged is not None and sk in staged.seen:
            return staged.seen[sk]
        return self._db.get(sk)

    def get_many(self, keys: list[tuple[int, bytes]]) -> list[bytes | None]:
        """The stored states of (partition, key) pairs, in one multi-get."""
        return self._db.get([layout.state_key(p, k) for p, k in keys]) if keys else []

    def put(self, staged: Staged, partition: int, key: bytes, blob: bytes, prev: bytes | None) -> None:
        sk = layout.state_key(partition, key)
        cls = layout.stored_class(blob)
        if prev is not None and layout.stored_class(prev) != cls:
            staged.batch.delete(layout.index_key(partition, layout.stored_class(prev), key))
        staged.batch.put(sk, blob)
        staged.batch.put(layout.index_key(partition, cls, key), b"")
        staged.seen[sk] = blob
        if prev is None:
            staged.delta[partition] = staged.delta.get(partition, 0) + 1

    def delete(self, staged: Staged, partition: int, key: bytes, prev: bytes | None) -> None:
        if prev is None:
            return
        sk = layout.state_key(partition, key)
        staged.batch.delete(sk)
        staged.batch.delete(layout.index_key(partition, layout.stored_class(prev), key))
        staged.seen[sk] = None
        staged.delta[partition] = staged.delta.get(partition, 0) - 1

    def apply(self, staged: Staged, offsets: dict[int, int]) -> None:
        """Write a batch whose transaction committed, with the partitions' new checkpoints."""
        now = int(time.time() * 1000)
        new = {}
        for p in set(offsets) | set(staged.delta):
            offset, _, states = self._checkpoints.get(p, (0, 0, 0))
            new[p] = (offsets.get(p, offset), now, states + staged.delta.get(p, 0))
            staged.batch.put(layout.checkpoint_key(p), layout.pack_checkpoint(*new[p]))
        self._db.write(staged.batch)
        self._checkpoints.update(new)

    # ------------------------------------------------------------------ sweeps

    def scan(self, sel: Selector, chunk: int) -> Iterator[list[bytes]]:
        """The stored states of owned partitions a sweep under `sel` must decide, `chunk`
        index entries at a time. Each chunk is read when asked for (so it is the latest state),
        and a partition revoked meanwhile is skipped."""
        for p in sorted(self.owned):
            for cls in sel.classes:
                prefix = b"x" + layout.part(p) + cls
                after = prefix
                while True:
                    if p not in self.owned:
                        break
                    keys = self._index_page(prefix, after, chunk)
                    if not keys:
                        break
                    after = keys[-1] + b"\x00"
                    n = len(prefix)
                    blobs = self._db.get([b"s" + layout.part(p) + k[n:] for k in keys])
                    yield [b for b in blobs if b is not None and sel.admits(*layout.entitlement_validity(b))]
                    if len(keys) < chunk:
                        break

    def _index_page(self, prefix: bytes, start: bytes, limit: int) -> list[bytes]:
        it = self._db.iter()
        it.seek(start)
        out: list[bytes] = []
        while it.valid() and len(out) < limit:
            k = it.key()
            if not k.startswith(prefix):
                break
            out.append(k)
            it.next()
        del it
        return out


class _Locked(Exception):
    """The slot's RocksDB lock is held (by another worker, or this process)."""
