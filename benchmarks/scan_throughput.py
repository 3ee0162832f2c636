#!/usr/bin/env python3
"""Scan throughput against the floor, on a large synthetic OCI archive.

    python benchmarks/scan_throughput.py [--size-mb 320] [--files 20000] [--jobs 1 2] [--runs 3]
                                         [--keep DIR] [--memory-check]

Builds (in a temp dir, or ``--keep DIR`` to build once and reuse) a deterministic oci-archive: several
gzip layers (compressed with ``isal.igzip`` at level 1 — build speed; decompression speed hardly depends
on the level), a mix of incompressible data (seeded ``random.randbytes``, like binaries and compressed
assets), compressible text (words drawn from a seeded vocabulary, like docs and source) and many small
files, plus overwrites, whiteouts and an opaque directory in later layers as an upgrade step would write.

Then measures, each in a fresh child process so timings and peak RSS are independent:

- **floor**: per layer blob, one pass on one core: read it from the outer tar, SHA-256 of the compressed
  bytes, gunzip with ``isal`` (as the engine does), SHA-256 of the tar stream;
- **floor+sha**: the floor plus a second SHA-256 over the tar stream, about what hashing every file's
  content costs (the engine must: ``FileEntry.sha256``) — a reference, not the target's floor;
- **scan**: ``scanner.engine.scan()`` with ``jobs=N`` for each ``--jobs`` value.

Best of ``--runs`` (runs are interleaved, so noise from other load spreads across all of them). Memory,
two ways, no tracemalloc (C allocations count too): **RSS** is the measuring child's ``VmHWM`` (its exact
peak resident set; ``ru_maxrss`` would include the parent's pages, as it survives exec); **PSS** is the
peak of the summed proportional set size of the child and its worker processes, sampled every 50 ms by
the parent from ``/proc/PID/smaps_rollup`` (pages shared by forked workers counted once). The archive
is read once before measuring, so every run reads from the page cache.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024
CHUNK = 1 * MiB
PSS_INTERVAL = 0.05  # seconds between samples of the measured process tree's PSS
SEED = 20240601
GZIP_LEVEL = 1
LAYER_WEIGHTS = (0.22, 0.18, 0.15, 0.12, 0.11, 0.09, 0.07, 0.06)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
FORMAT_VERSION = 2  # bump when the generator changes, so --keep does not reuse a stale archive


# ---------------------------------------------------------------------------------------------- build


class _HashingGzipSink(io.RawIOBase):
    """A write-only stream: hashes the tar bytes, gzips them, hashes and writes the blob."""

    def __init__(self, out: io.BufferedWriter) -> None:
        from isal import isal_zlib

        self.out = out
        self.comp = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 31)
        self.tar_sha = hashlib.sha256()
        self.blob_sha = hashlib.sha256()
        self.tar_size = 0
        self.blob_size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.tar_sha.update(data)
        self.tar_size += len(data)
        self._out(self.comp.compress(data))
        return len(data)

    def _out(self, blob: bytes) -> None:
        self.blob_sha.update(blob)
        self.blob_size += len(blob)
        self.out.write(blob)

    def finish(self) -> None:
        """Flush the compressor (the tar must already be closed)."""
        self._out(self.comp.flush())


@dataclass
class Layer:
    """One built layer blob, kept on disk until the outer archive is written."""

    path: Path
    digest: str
    diff_id: str
    size: int
    tar_size: int
    entries: int
    content_bytes: int


@dataclass
class Built:
    """What the generator wrote: the archive and the totals the table needs."""

    archive: Path
    layers: list[dict] = field(default_factory=list)
    files: int = 0  # regular files (all layers)
    entries: int = 0  # tar members (files, dirs, symlinks, whiteouts)
    content_bytes: int = 0
    tar_bytes: int = 0
    blob_bytes: int = 0


class _Generator:
    """Deterministic content: the same arguments give the same archive, byte for byte."""

    def __init__(self, seed: int) -> None:
        self.rng = rng = random.Random(seed)
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        freq = [12, 9, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 0.2, 0.2, 0.1, 0.1]
        vocab = [
            "".join(rng.choices(letters, weights=freq, k=int(rng.expovariate(1 / 5)) + 1))
            for _ in range(1000)
        ]
        vocab += ["def", "return", "self", "import", "the", "and", "if", "for", "in", "=", "(", ")", "\n"]
        rng.shuffle(vocab)
        zipf = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocab))))
        # A few MiB of English-ish text: about 3:1 with gzip -1, like docs and source code.
        self.pool = " ".join(rng.choices(vocab, cum_weights=zipf, k=900_000)).encode()

    def text(self, size: int) -> bytes:
        """Compressible text: slices of the pool."""
        out = bytearray()
        while len(out) < size:
            start = self.rng.randrange(0, len(self.pool) - 65536)
            out += self.pool[start : start + min(size - len(out), self.rng.randint(4096, 65536))]
        return bytes(out)

    def binary(self, size: int, elf: bool = False) -> bytes:
        """Incompressible bytes; optionally with an ELF header so it looks like a binary."""
        head = b"\x7fELF\x02\x01\x01\x00" + bytes(8) if elf else b""
        return head[:size] + self.rng.randbytes(max(0, size - len(head)))

    def small_size(self) -> int:
        """Small-file sizes: log-normal, median ~1.5 KiB, mean ~2.5 KiB, capped at 64 KiB."""
        return min(64 * 1024, int(self.rng.lognormvariate(7.3, 1.0)))


def _member(
    name: str, size: int = 0, *, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, linkname: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode, info.linkname = size, kind, mode, linkname
    info.mtime, info.uid, info.gid, info.uname, info.gname = 1_700_000_000, 0, 0, "root", "root"
    return info


def _build_layer(
    dest: Path, gen: _Generator, index: int, n_small: int, big_bytes: int, earlier: list[str]
) -> tuple[Layer, list[str], set[str]]:
    """Write one gzip layer blob. ``earlier``: the live regular files below it (unique).

    Returns the layer, the regular files it added and the lower files it removed.
    """
    rng = gen.rng
    added: list[str] = []
    removed: set[str] = set()
    dirs: set[str] = set()
    entries = 0
    content = 0
    with dest.open("wb") as fh:
        sink = _HashingGzipSink(fh)  # type: ignore[arg-type]
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.GNU_FORMAT) as tar:

            def parents(name: str) -> None:
                nonlocal entries
                parts = name.split("/")[:-1]
                for depth in range(1, len(parts) + 1):
                    d = "/".join(parts[:depth]) + "/"
                    if d not in dirs:
                        dirs.add(d)
                        tar.addfile(_member(d, kind=tarfile.DIRTYPE, mode=0o755))
                        entries += 1

            def add(name: str, data: bytes, mode: int = 0o644) -> None:
                nonlocal entries, content
                parents(name)
                tar.addfile(_member(name, len(data), mode=mode), io.BytesIO(data))
                entries += 1
                content += len(data)
                added.append(name)

            def marker(name: str) -> None:
                nonlocal entries
                parents(name)
                tar.addfile(_member(name, mode=0o600))
                entries += 1

            # An upgrade step: overwrite ~2% of the files below, delete ~1%, make one directory opaque.
            if earlier:
                overwritten = rng.sample(earlier, k=len(earlier) // 50)
                for name in overwritten:
                    add(name, gen.text(gen.small_size()))
                keep = sorted(set(earlier) - set(overwritten))
                for name in rng.sample(keep, k=len(earlier) // 100):
                    parent, _, base = name.rpartition("/")
                    marker(f"{parent}/.wh.{base}")
                    removed.add(name)
                victim = rng.choice(keep).rpartition("/")[0]
                marker(f"{victim}/.wh..wh..opq")
                removed.update(n for n in keep if n.startswith(victim + "/"))
            # Small files: source, docs, shared objects, scripts.
            for i in range(n_small):
                pkg = f"usr/lib/bench/l{index}/pkg{i // 200:03d}"
                roll = rng.random()
                if roll < 0.55:
                    add(f"{pkg}/mod_{i}.py", gen.text(gen.small_size()))
                elif roll < 0.75:
                    add(f"usr/share/doc/l{index}-pkg{i // 200:03d}/file_{i}.txt", gen.text(gen.small_size()))
                elif roll < 0.92:
                    add(f"{pkg}/lib_{i}.so", gen.binary(gen.small_size(), elf=True), 0o755)
                else:
                    add(f"usr/bin/l{index}-tool-{i}", b"#!/bin/sh\n" + gen.text(gen.small_size()), 0o755)
            # A few symlinks, as real layers have.
            for i in range(min(50, len(added))):
                tar.addfile(
                    _member(
                        f"usr/lib/bench/l{index}/link_{i}",
                        kind=tarfile.SYMTYPE,
                        mode=0o777,
                        linkname=added[i].rpartition("/")[2],
                    )
                )
                entries += 1
            # Big files: half incompressible (binaries, archives), half text (logs, data, docs).
            left, n = big_bytes, 0
            while left > 0:
                size = min(left, rng.randint(1 * MiB, 24 * MiB))
                if (n + index) % 2 == 0:
                    add(f"opt/l{index}/bin/blob_{n}.bin", gen.binary(size, elf=n % 4 == 0), 0o755)
                else:
                    add(f"var/lib/l{index}/data_{n}.log", gen.text(size))
                left -= size
                n += 1
        sink.finish()
    layer = Layer(
        dest,
        f"sha256:{sink.blob_sha.hexdigest()}",
        f"sha256:{sink.tar_sha.hexdigest()}",
        sink.blob_size,
        sink.tar_size,
        entries,
        content,
    )
    return layer, added, removed


def _json(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def build_archive(dest: Path, size_mb: int, n_files: int, seed: int = SEED) -> Built:
    """Write the benchmark oci-archive to ``dest``."""
    gen = _Generator(seed)
    work = dest.parent / (dest.name + ".parts")
    work.mkdir(parents=True, exist_ok=True)
    small_mean = 2500  # bytes, the mean of _Generator.small_size
    big_total = max(0, size_mb * MiB - n_files * small_mean)
    layers: list[Layer] = []
    live: dict[str, None] = {}  # the regular files visible so far, in order (an ordered set)
    built = Built(dest)
    for index, weight in enumerate(LAYER_WEIGHTS):
        n_small = round(n_files * weight)
        layer, added, removed = _build_layer(
            work / f"layer{index}", gen, index, n_small, round(big_total * weight), list(live)
        )
        layers.append(layer)
        for name in removed:
            del live[name]
        live.update(dict.fromkeys(added))
        built.files += len(added)
        print(
            f"  layer {index}: {layer.content_bytes / MiB:7.1f} MiB content, {layer.entries:6d} entries, "
            f"{layer.size / MiB:7.1f} MiB gzip",
            file=sys.stderr,
        )
    config = _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-06-01T00:00:00Z",
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "User": "app", "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [la.diff_id for la in layers]},
            "history": [
                {"created": "2024-06-01T00:00:00Z", "created_by": f"/bin/sh -c #(nop) ADD layer{i}"}
                for i in range(len(layers))
            ],
        }
    )
    config_digest = f"sha256:{hashlib.sha256(config).hexdigest()}"
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": la.digest, "size": la.size} for la in layers],
        }
    )
    manifest_digest = f"sha256:{hashlib.sha256(manifest).hexdigest()}"
    index = _json(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "annotations": {"org.opencontainers.image.ref.name": "bench"},
                }
            ],
        }
    )
    tmp = dest.with_suffix(".partial")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", index),
            (f"blobs/sha256/{manifest_digest[7:]}", manifest),
            (f"blobs/sha256/{config_digest[7:]}", config),
        ):
            tar.addfile(_member(name, len(data)), io.BytesIO(data))
        for la in layers:
            with la.path.open("rb") as fh:
                tar.addfile(_member(f"blobs/sha256/{la.digest[7:]}", la.size), fh)
            la.path.unlink()
    tmp.rename(dest)
    shutil.rmtree(work, ignore_errors=True)
    built.layers = [
        {"digest": la.digest, "size": la.size, "tar_size": la.tar_size, "entries": la.entries}
        for la in layers
    ]
    built.entries = sum(la.entries for la in layers)
    built.content_bytes = sum(la.content_bytes for la in layers)
    built.tar_bytes = sum(la.tar_size for la in layers)
    built.blob_bytes = sum(la.size for la in layers)
    return built


# -------------------------------------------------------------------------------------------- measure


def _layer_offsets(archive: Path) -> list[tuple[int, int]]:
    """(offset, size) of each layer blob in the outer tar, in manifest order."""
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar}
        index = json.load(tar.extractfile(members["index.json"]))  # type: ignore[arg-type]
        digest = index["manifests"][0]["digest"][7:]
        manifest = json.load(tar.extractfile(members[f"blobs/sha256/{digest}"]))  # type: ignore[arg-type]
    out = []
    for layer in manifest["layers"]:
        m = members[f"blobs/sha256/{layer['digest'][7:]}"]
        out.append((m.offset_data, m.size))
    return out


class _BlobReader:
    """Reads one blob's byte range with ``preadv``, hashing it on the way (as the engine's reader does)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self.fd, self.pos, self.end = fd, offset, offset + size
        self.sha = hashlib.sha256()

    def readinto(self, buf: bytearray | memoryview) -> int:
        want = min(len(buf), self.end - self.pos)
        if want <= 0:
            return 0
        view = memoryview(buf)[:want]
        n = os.preadv(self.fd, [view], self.pos)
        if n <= 0:
            raise OSError("truncated blob")
        self.sha.update(view[:n])
        self.pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        buf = bytearray(min(CHUNK if size < 0 else size, self.end - self.pos))
        return bytes(buf[: self.readinto(buf)])

    def readable(self) -> bool:
        return True


def _floor(archive: Path, content_hash: bool = False) -> dict:
    """One pass per blob on one core: SHA-256(blob) + isal gunzip + SHA-256(tar).

    Uses the same ISA-L reader as the engine (``isal_zlib._GzipReader``, ``readinto`` a reused 1 MiB
    buffer; measured ~15% faster here than ``decompressobj``), so the floor is as low as the library
    allows. ``content_hash`` adds a second SHA-256 over the tar stream: about what hashing every
    regular file's content costs (the engine must, for FileEntry.sha256), with no tar parsing at all.
    """
    from isal import isal_zlib

    offsets = _layer_offsets(archive)
    start = time.perf_counter()
    tar_bytes = 0
    digests = []
    out = bytearray(CHUNK)
    view = memoryview(out)
    fd = os.open(archive, os.O_RDONLY)
    try:
        for offset, size in offsets:
            raw = _BlobReader(fd, offset, size)
            tar_sha = hashlib.sha256()
            content_sha = hashlib.sha256() if content_hash else None
            reader = isal_zlib._GzipReader(raw, CHUNK)
            while n := reader.readinto(out):
                tar_sha.update(view[:n])
                if content_sha is not None:
                    content_sha.update(view[:n])
                tar_bytes += n
            digests.append((raw.sha.hexdigest(), tar_sha.hexdigest()))
    finally:
        os.close(fd)
    return {"seconds": time.perf_counter() - start, "tar_bytes": tar_bytes, "layers": len(digests)}


def _scan(archive: Path, jobs: int) -> dict:
    """The engine's full scan with ``jobs`` workers."""
    from scanner.engine import ScanOptions, scan

    start = time.perf_counter()
    report = scan(f"oci-archive:{archive}", options=ScanOptions(jobs=jobs))
    seconds = time.perf_counter() - start
    images = report.images
    integrity = [f.rule_id for img in images for f in img.findings if f.rule_id.startswith("integrity.")]
    return {
        "seconds": seconds,
        "files": report.stats.files,
        "layers": report.stats.layers,
        "bytes_read": report.stats.bytes_read,
        "integrity": integrity,
        "entries": sum(len(img.files) for img in images),
        "graveyard": sum(len(img.graveyard) for img in images),
    }


def _vm_hwm_kib(pid: int | str = "self") -> int:
    """Peak resident set of one process (``VmHWM``): exact, and reset by exec, unlike ``ru_maxrss``."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _cpu_seconds() -> float:
    """user+sys of this process and its reaped children (the engine's worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _child(args: argparse.Namespace) -> None:
    """Run one measurement in this (fresh) process and print it as JSON."""
    archive = Path(args.archive)
    sys.path.insert(0, str(REPO))
    import isal.isal_zlib  # noqa: F401  (imports are not part of any measurement)

    import scanner.engine  # noqa: F401

    cpu = _cpu_seconds()
    if args.child == "scan":
        result = _scan(archive, args.child_jobs)
    else:
        result = _floor(archive, content_hash=args.child == "floor+sha")
    result["cpu_seconds"] = _cpu_seconds() - cpu  # over the same stretch as the time (plus setup)
    result.update(
        hwm_kib=_vm_hwm_kib(), worker_maxrss_kib=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    print(json.dumps(result))


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (worker processes), from /proc."""
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
    return out


def _pss_kib(pid: int) -> int:
    """Proportional set size of one process: shared pages split between the processes sharing them."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def _measure(archive: Path, what: str, jobs: int = 1) -> dict:
    """One measurement in a child process; this process samples the child tree's PSS meanwhile."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        what,
        "--child-jobs",
        str(jobs),
        "--archive",
        str(archive),
    ]
    peak_pss = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO) as proc:
        while proc.poll() is None:
            peak_pss = max(peak_pss, sum(_pss_kib(p) for p in _tree(proc.pid)))
            time.sleep(PSS_INTERVAL)
        stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{what} (jobs={jobs}) failed:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_pss_kib"] = peak_pss
    return result


def _machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, {platform.system()}"


def _warm(archive: Path) -> None:
    with archive.open("rb") as fh:
        while fh.read(8 * MiB):
            pass


def _rows(archive: Path, built: Built, jobs: list[int], runs: int) -> list[dict]:
    results: dict[str, list[dict]] = {}
    for run in range(runs):
        for what, j in [("floor", 1), ("floor+sha", 1)] + [("scan", j) for j in jobs]:
            key = f"scan jobs={j}" if what == "scan" else what
            r = _measure(archive, what, j)
            results.setdefault(key, []).append(r)
            print(f"  run {run + 1}/{runs} {key:12s} {r['seconds']:7.2f} s", file=sys.stderr)
    best = {key: min(rs, key=lambda r: r["seconds"]) for key, rs in results.items()}
    for key, r in best.items():
        r["name"] = key
        r["peak_self"] = max(x["hwm_kib"] for x in results[key]) / 1024
        r["peak_pss"] = max(x["peak_pss_kib"] for x in results[key]) / 1024
    return list(best.values())


def _table(rows: list[dict], built: Built, jobs: list[int]) -> str:
    floor = next(r for r in rows if r["name"] == "floor")["seconds"]
    j1 = next((r["seconds"] for r in rows if r["name"] == "scan jobs=1"), None)
    head = (
        f"{'measurement':13s} {'seconds':>8s} {'×floor':>7s} {'files/s':>9s} {'MiB/s gz':>9s} "
        f"{'MiB/s tar':>9s} {'vs j1':>6s} {'CPU s':>7s} {'cores':>5s} {'RSS MiB':>8s} {'PSS MiB':>8s}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        s = r["seconds"]
        speed = f"{j1 / s:5.2f}×" if j1 and r["name"].startswith("scan") else "     -"
        lines.append(
            f"{r['name']:13s} {s:8.2f} {s / floor:6.2f}× {built.files / s:9.0f} "
            f"{built.blob_bytes / MiB / s:9.1f} {built.tar_bytes / MiB / s:9.1f} {speed:>6s} "
            f"{r['cpu_seconds']:7.2f} {r['cpu_seconds'] / s:5.2f} {r['peak_self']:8.0f} {r['peak_pss']:8.0f}"
        )
    lines.append("")
    j1row = next((r for r in rows if r["name"] == "scan jobs=1"), None)
    sha_row = next((r for r in rows if r["name"] == "floor+sha"), None)
    if sha_row:
        lines.append(
            f"floor+sha = floor + a 2nd SHA-256 of the tar stream (≈ the per-file content hashes the "
            f"engine must compute): {sha_row['seconds'] / floor:.2f}× floor, the least any scan can cost"
        )
    if j1row:
        ratio = j1row["seconds"] / floor
        verdict = "met" if ratio <= 1.3 else "MISSED"
        lines.append(f"target scan ≤ 1.3× floor (1 core): {ratio:.2f}× -> {verdict}")
    j2row = next((r for r in rows if r["name"] == "scan jobs=2"), None)
    if j1row and j2row:
        sp = j1row["seconds"] / j2row["seconds"]
        lines.append(f"target jobs=2 ≥ 1.7× jobs=1: {sp:.2f}× -> {'met' if sp >= 1.7 else 'MISSED'}")
    return "\n".join(lines)


def _memory_check(workdir: Path, n_files: int, size_mb: int, main_rss: float) -> str:
    """Peak RSS of jobs=1 on a quarter-size image with the same file count: memory must not track bytes."""
    small = workdir / f"bench-{size_mb // 4}mb-{n_files}f-v{FORMAT_VERSION}.oci.tar"
    if not small.exists():
        print(f"building the memory-check image ({size_mb // 4} MiB) ...", file=sys.stderr)
        build_archive(small, size_mb // 4, n_files)
    _warm(small)
    r = _measure(small, "scan", 1)
    return (
        f"memory check: jobs=1 peak RSS {r['hwm_kib'] / 1024:.0f} MiB at {size_mb // 4} MiB vs "
        f"{main_rss:.0f} MiB at {size_mb} MiB (same {n_files} small files)"
    )


def main(argv: list[str] | None = None) -> int:
    """Build the archive, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=320, help="uncompressed content, MiB (default 320)")
    parser.add_argument("--files", type=int, default=20000, help="small files across layers (default 20000)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="jobs values to scan with")
    parser.add_argument("--runs", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument("--keep", type=Path, help="build the archive in DIR and reuse it on later runs")
    parser.add_argument(
        "--memory-check",
        action="store_true",
        help="also scan a quarter-size image with the same file count and compare peak RSS",
    )
    parser.add_argument("--child", choices=["floor", "floor+sha", "scan"], help=argparse.SUPPRESS)
    parser.add_argument("--child-jobs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--archive", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0

    with _workdir(args.keep) as workdir:
        archive = workdir / f"bench-{args.size_mb}mb-{args.files}f-v{FORMAT_VERSION}.oci.tar"
        meta = archive.with_suffix(".json")
        if archive.exists() and meta.exists():
            built = Built(archive, **json.loads(meta.read_text()))
            print(f"reusing {archive}", file=sys.stderr)
        else:
            print(f"building {archive} ...", file=sys.stderr)
            t0 = time.perf_counter()
            built = build_archive(archive, args.size_mb, args.files)
            print(f"built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            meta.write_text(json.dumps({k: v for k, v in vars(built).items() if k != "archive"}))
        _warm(archive)
        rows = _rows(archive, built, args.jobs, args.runs)
        scan_rows = [r for r in rows if r["name"].startswith("scan")]
        bad = {r["name"]: r["integrity"] for r in scan_rows if r["integrity"]}
        print()
        print(f"machine: {_machine()}")
        print(
            f"image: {len(built.layers)} gzip layers (isal level {GZIP_LEVEL}), {built.files} files, "
            f"{built.entries} tar entries, content {built.content_bytes / MiB:.0f} MiB, "
            f"tar {built.tar_bytes / MiB:.0f} MiB, gzip {built.blob_bytes / MiB:.0f} MiB"
        )
        print(
            f"best of {args.runs}; engine counted "
            + ", ".join(f"{r['name']}: {r['files']} files, {r['graveyard']} graveyard" for r in scan_rows)
        )
        print()
        print(_table(rows, built, args.jobs))
        if bad:
            print(f"WARNING: integrity findings on a clean image: {bad}")
        if args.memory_check and scan_rows:
            j1 = next((r for r in scan_rows if r["name"] == "scan jobs=1"), scan_rows[0])
            print(_memory_check(workdir, args.files, args.size_mb, j1["peak_self"]))
    return 0


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="lowerdir-bench-") as tmp:
        yield Path(tmp)


if __name__ == "__main__":
    sys.exit(main())
