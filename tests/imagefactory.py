"""Build container-image archives in pure Python for tests (no Docker, no network).

Shared by the engine tests and the Django tests. Everything is deterministic: the same arguments give
the same bytes, so digests can be asserted.

    from tests.imagefactory import Entry, build_image
    img = build_image(tmp_path / "img.tar", [
        [Entry("/etc/", type="dir", mode=0o755), ("/etc/passwd", b"root:x:0:0::/root:/bin/sh\\n")],
        [Entry("/usr/bin/.hidden", b"\\x7fELF...", mode=0o4755)],
        [Entry("/usr/bin/.wh..hidden")],          # a whiteout deletes it again
    ], fmt="oci-archive", repo_tags=["example/app:1.0"])

Formats: ``docker-archive`` (legacy ``manifest.json`` + ``<id>/layer.tar``; a layer identical to an
earlier one is stored as a symlink to it, as Docker does), ``docker-archive-oci`` (Docker 25+:
``blobs/sha256`` + ``index.json`` + ``manifest.json``), ``oci-archive`` (a tar of an OCI layout) and
``oci`` (an OCI layout directory). ``platforms=["linux/amd64", "linux/arm64"]`` writes an image index
(``index.json`` -> index blob -> one manifest per platform, the way skopeo writes ``--all``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
FORMATS = ("docker-archive", "docker-archive-oci", "oci-archive", "oci")
# Keys of ``config=`` that belong at the top level of the image config; all others go into its "config".
TOP_LEVEL_KEYS = {"architecture", "os", "variant", "os.version", "os.features", "created", "author",
                  "rootfs", "history"}
DEFAULT_CREATED = "2024-01-01T00:00:00Z"

_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


@dataclass
class Entry:
    """One tar member. ``path`` may start with "/" (it is stored relative, as Docker writes layers)."""

    path: str
    data: bytes = b""
    type: str = "file"  # file | dir | symlink | hardlink | char | block | fifo
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    linkname: str = ""
    mtime: int = 0


@dataclass
class RawBlob:
    """A ready-made layer blob (e.g. a hand-made gzip bomb), stored as is. ``diff_id`` goes into the
    config unchanged (give the real one, or anything when the test does not care)."""

    blob: bytes
    diff_id: str = "sha256:" + "0" * 64


Layer = list[Entry | tuple[str, bytes]] | bytes | RawBlob  # entries, raw tar bytes, or a ready blob


@dataclass
class BuiltImage:
    path: Path
    manifest_digest: str  # "" for the legacy docker-archive layout (it has no manifest blob)
    config_digest: str
    layer_digests: list[str]
    diff_ids: list[str]
    # Extras (multi-platform images): platform -> manifest digest / config digest, and the index blob.
    manifests: dict[str, str] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)
    index_digest: str = ""
    fmt: str = "docker-archive"


def _entry(item: Entry | tuple[str, bytes]) -> Entry:
    return item if isinstance(item, Entry) else Entry(item[0], item[1])


def layer_tar(entries: Sequence[Entry | tuple[str, bytes]], *, keep_names: bool = False) -> bytes:
    """Plain (PAX-format) tar bytes for ``entries``, deterministic.

    Leading "/" is stripped from names unless ``keep_names`` (hostile tests want raw names).
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in entries:
            e = _entry(item)
            name = e.path if keep_names else e.path.lstrip("/")
            info = tarfile.TarInfo(name)
            info.type = _TYPES[e.type]
            info.mode = e.mode
            info.uid, info.gid = e.uid, e.gid
            info.uname = info.gname = ""
            info.mtime = e.mtime
            info.linkname = e.linkname
            if e.type == "file":
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    if compression == "none":
        return data
    raise ValueError(f"unknown compression {compression!r}")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _dumps(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _split_platform(platform: str) -> dict[str, str]:
    parts = platform.split("/")
    out = {"os": parts[0], "architecture": parts[1]}
    if len(parts) > 2:
        out["variant"] = parts[2]
    return out


def _make_config(diff_ids: list[str], platform: str, config: dict | None,
                 history: list[dict] | None) -> dict:
    doc: dict = {
        **_split_platform(platform),
        "created": DEFAULT_CREATED,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history if history is not None else [
            {"created": DEFAULT_CREATED, "created_by": f"/bin/sh -c #(nop) COPY layer{i} /"}
            for i in range(len(diff_ids))
        ],
    }
    for key, value in (config or {}).items():
        if key == "config":
            doc["config"].update(value)
        elif key in TOP_LEVEL_KEYS:
            doc[key] = value
        else:
            doc["config"][key] = value
    return doc


def _ref_annotations(tag: str, docker: bool) -> dict[str, str]:
    if docker:  # what Docker 25+ writes
        return {"io.containerd.image.name": tag, "org.opencontainers.image.ref.name": tag.rsplit(":", 1)[-1]}
    return {"org.opencontainers.image.ref.name": tag}


def build_image(
    dest: Path,
    layers: list[Layer],
    *,
    fmt: str = "docker-archive",
    compression: str = "gzip",
    config: dict | None = None,
    history: list[dict] | None = None,
    repo_tags: list[str] | None = None,
    platforms: list[str] | None = None,
) -> BuiltImage:
    """Write an image with one layer per item of ``layers`` to ``dest`` (a file, or a dir for "oci").

    A layer is a list of entries, raw tar bytes (compressed like the others), or a :class:`RawBlob`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    dest = Path(dest)
    blobs_data: list[bytes] = []
    diff_ids: list[str] = []
    for layer in layers:
        if isinstance(layer, RawBlob):
            blobs_data.append(layer.blob)
            diff_ids.append(layer.diff_id)
            continue
        tar = layer if isinstance(layer, bytes) else layer_tar(layer)
        blobs_data.append(compress(tar, compression))
        diff_ids.append(sha256(tar))
    layer_digests = [sha256(b) for b in blobs_data]
    tags = list(repo_tags or [])

    if fmt == "docker-archive":
        if platforms and len(platforms) > 1:
            raise ValueError("the legacy docker-archive layout cannot hold an image index")
        cfg = _dumps(_make_config(diff_ids, (platforms or ["linux/amd64"])[0], config, history))
        members = _legacy_members(cfg, blobs_data, diff_ids, tags)
        _write_tar(dest, members)
        return BuiltImage(dest, "", sha256(cfg), layer_digests, diff_ids, fmt=fmt,
                          configs={(platforms or ["linux/amd64"])[0]: sha256(cfg)})

    blobs: dict[str, bytes] = {}
    for digest, data in zip(layer_digests, blobs_data, strict=True):
        blobs[digest] = data
    manifests: dict[str, str] = {}
    configs: dict[str, str] = {}
    descriptors: list[dict] = []
    for platform in platforms or ["linux/amd64"]:
        cfg = _dumps(_make_config(diff_ids, platform, config, history))
        blobs[sha256(cfg)] = cfg
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(cfg), "size": len(cfg)},
            "layers": [{"mediaType": LAYER_MEDIA[compression], "digest": d, "size": len(b)}
                       for d, b in zip(layer_digests, blobs_data, strict=True)],
        }
        mbytes = _dumps(manifest)
        blobs[sha256(mbytes)] = mbytes
        manifests[platform] = sha256(mbytes)
        configs[platform] = sha256(cfg)
        descriptors.append({"mediaType": OCI_MANIFEST, "digest": sha256(mbytes), "size": len(mbytes),
                            "platform": _split_platform(platform)})

    docker = fmt == "docker-archive-oci"
    index_digest = ""
    if platforms:
        index = _dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors})
        index_digest = sha256(index)
        blobs[index_digest] = index
        top = {"mediaType": OCI_INDEX, "digest": index_digest, "size": len(index)}
    else:
        top = {k: v for k, v in descriptors[0].items() if k != "platform"}
    index_json = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                  "manifests": [{**top, "annotations": _ref_annotations(t, docker)} for t in tags] or [top]}

    files: list[tuple[str, bytes | str]] = [("oci-layout", _dumps({"imageLayoutVersion": "1.0.0"}))]
    files += [(f"blobs/sha256/{d.split(':', 1)[1]}", b) for d, b in blobs.items()]
    files.append(("index.json", _dumps(index_json)))
    if docker:
        first = platforms[0] if platforms else "linux/amd64"
        files.append(("manifest.json", _dumps([{
            "Config": "blobs/sha256/" + configs[first].split(":", 1)[1],
            "RepoTags": tags or None,
            "Layers": ["blobs/sha256/" + d.split(":", 1)[1] for d in layer_digests],
        }])))
    if fmt == "oci":
        for name, data in files:
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)  # type: ignore[arg-type]
    else:
        dirs = [("blobs/", None), ("blobs/sha256/", None)]
        _write_tar(dest, [files[0], *dirs, *files[1:]])
    first = (platforms or ["linux/amd64"])[0]
    return BuiltImage(dest, manifests[first], configs[first], layer_digests, diff_ids,
                      manifests=manifests, configs=configs, index_digest=index_digest, fmt=fmt)


def _legacy_members(cfg: bytes, blobs_data: list[bytes], diff_ids: list[str],
                    tags: list[str]) -> list[tuple[str, bytes | str | None]]:
    members: list[tuple[str, bytes | str | None]] = []
    first_id_for: dict[bytes, str] = {}
    layer_paths: list[str] = []
    parent = ""
    for data, diff_id in zip(blobs_data, diff_ids, strict=True):
        layer_id = hashlib.sha256(f"{parent}\n{diff_id}".encode()).hexdigest()
        members.append((f"{layer_id}/", None))
        members.append((f"{layer_id}/VERSION", b"1.0"))
        members.append((f"{layer_id}/json", _dumps({"id": layer_id, "parent": parent} if parent
                                                    else {"id": layer_id})))
        key = hashlib.sha256(data).digest()
        if key in first_id_for:  # Docker stores a repeated layer as a symlink to the first copy
            members.append((f"{layer_id}/layer.tar", f"../{first_id_for[key]}/layer.tar"))
        else:
            first_id_for[key] = layer_id
            members.append((f"{layer_id}/layer.tar", data))
        layer_paths.append(f"{layer_id}/layer.tar")
        parent = layer_id
    config_name = hashlib.sha256(cfg).hexdigest() + ".json"
    members.append((config_name, cfg))
    members.append(("manifest.json", _dumps([{"Config": config_name, "RepoTags": tags or None,
                                              "Layers": layer_paths}])))
    if tags:
        repos: dict[str, dict[str, str]] = {}
        for tag in tags:
            repo, _, name = tag.rpartition(":")
            repos.setdefault(repo, {})[name] = parent
        members.append(("repositories", _dumps(repos)))
    return members


def _write_tar(dest: Path, members: Sequence[tuple[str, bytes | str | None]]) -> None:
    """Write an outer archive: bytes -> regular file, str -> symlink target, None -> directory."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.uname = info.gname = ""
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))


def write_archive(dest: Path, members: Sequence[tuple[str, bytes | str | None]]) -> Path:
    """Write a hand-made outer archive (hostile tests): bytes = file, str = symlink, None = dir."""
    _write_tar(Path(dest), members)
    return Path(dest)


def tamper(image: BuiltImage | Path, digest: str,
           change: bytes | Callable[[bytes], bytes]) -> None:
    """Replace the content of the blob whose SHA-256 is ``digest`` (in an archive or a layout dir)."""
    want = digest.split(":", 1)[-1]
    path = Path(image.path if isinstance(image, BuiltImage) else image)

    def new(data: bytes) -> bytes:
        return change(data) if callable(change) else change

    if path.is_dir():
        for root, _dirs, names in os.walk(path):
            for name in names:
                p = Path(root, name)
                if hashlib.sha256(p.read_bytes()).hexdigest() == want:
                    p.write_bytes(new(p.read_bytes()))
        return
    members: list[tuple[str, bytes | str | None]] = []
    with tarfile.open(path, "r:") as tar:
        for info in tar.getmembers():
            if info.isdir():
                members.append((info.name + "/", None))
            elif info.issym():
                members.append((info.name, info.linkname))
            else:
                f = tar.extractfile(info)
                data = f.read() if f else b""
                if hashlib.sha256(data).hexdigest() == want:
                    data = new(data)
                members.append((info.name, data))
    _write_tar(path, members)
