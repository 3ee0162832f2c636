"""Whiteouts, opaque directories, shadowing: the merged tree and graveyard, worked out by hand."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from scanner.engine import scan
from scanner.engine.model import Change, EntryType, FileEntry, ImageResult
from scanner.engine.tree import merge
from tests.imagefactory import Entry, build_image

D = {"type": "dir", "mode": 0o755}
MINER = b"\x7fELF\x02\x01\x01" + b"miner" * 20


def _image(tmp_path: Path, layers: list, fmt: str = "oci-archive") -> ImageResult:
    built = build_image(tmp_path / "img", layers, fmt=fmt)
    [image] = scan(str(built.path)).images
    return image


def _visible(image: ImageResult) -> dict[str, int]:
    return {f.path: f.layer_index for f in image.files if f.visible}


def _graves(image: ImageResult) -> set[tuple[str, int, int, str]]:
    return {(g.path, g.added_layer, g.hidden_layer, g.how) for g in image.graveyard}


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_whiteouts_opaque_and_shadowing(tmp_path: Path, fmt: str) -> None:
    layers = [
        [Entry("/etc/", **D), ("/etc/passwd", b"root\n"), Entry("/usr/", **D), Entry("/usr/bin/", **D),
         Entry("/usr/bin/tool", b"tool", mode=0o755), Entry("/opt/", **D), Entry("/opt/app/", **D),
         ("/opt/app/a", b"a"), Entry("/opt/app/sub/", **D), ("/opt/app/sub/b", b"b"),
         Entry("/tmp/", **D), ("/tmp/build.log", b"log")],
        [Entry("/usr/bin/", **D), Entry("/usr/bin/.hidden_miner", MINER, mode=0o4755),
         Entry("/etc/", **D), ("/etc/passwd", b"root\nevil\n")],
        [Entry("/usr/bin/", **D), Entry("/usr/bin/.wh..hidden_miner"),
         Entry("/opt/app/", **D), Entry("/opt/app/.wh..wh..opq"), ("/opt/app/new", b"new"),
         Entry("/.wh.tmp")],
    ]
    image = _image(tmp_path, layers, fmt)
    assert _visible(image) == {
        "/etc": 1, "/etc/passwd": 1, "/usr": 0, "/usr/bin": 2, "/usr/bin/tool": 0, "/opt": 0,
        "/opt/app": 2, "/opt/app/new": 2,
    }
    assert _graves(image) == {
        # layer 1 rewrote /etc, /etc/passwd and /usr/bin
        ("/etc", 0, 1, "shadowed"), ("/etc/passwd", 0, 1, "shadowed"), ("/usr/bin", 0, 1, "shadowed"),
        # layer 2: the miner is whited out, /opt/app made opaque, /tmp deleted with its content
        ("/usr/bin", 1, 2, "shadowed"), ("/usr/bin/.hidden_miner", 1, 2, "whiteout"),
        ("/opt/app", 0, 2, "shadowed"), ("/opt/app/a", 0, 2, "opaque"), ("/opt/app/sub", 0, 2, "opaque"),
        ("/opt/app/sub/b", 0, 2, "opaque"), ("/tmp", 0, 2, "whiteout"), ("/tmp/build.log", 0, 2, "whiteout"),
    }
    miner = next(g for g in image.graveyard if g.path == "/usr/bin/.hidden_miner")
    assert miner.sha256 == hashlib.sha256(MINER).hexdigest() and miner.mode == 0o4755
    entry = next(f for f in image.files if f.path == "/usr/bin/.hidden_miner" and f.change is Change.ADDED)
    assert {"setuid", "hidden", "elf", "executable"} <= entry.flags and not entry.visible
    # whiteouts are DELETED entries, never files
    deleted = [(f.path, f.layer_index, f.type, sorted(f.flags))
               for f in image.files if f.change is Change.DELETED]
    assert deleted == [
        ("/usr/bin/.hidden_miner", 2, EntryType.FILE, ["whiteout"]),
        ("/opt/app", 2, EntryType.DIR, ["opaque"]),
        ("/tmp", 2, EntryType.DIR, ["whiteout"]),
    ]
    assert not any(".wh." in f.path for f in image.files)
    whiteout = next(f for f in image.files if f.path == "/usr/bin/.hidden_miner" and f.layer_index == 2)
    assert whiteout.sha256 == miner.sha256 and not whiteout.visible
    counts = [(la.files_added, la.files_modified, la.files_deleted) for la in image.layers]
    assert counts == [(12, 0, 0), (1, 3, 0), (1, 2, 3)]


def test_readding_a_path_after_deletion_and_in_the_same_layer(tmp_path: Path) -> None:
    image = _image(tmp_path, [
        [("/a", b"1"), ("/b", b"1")],
        [Entry("/.wh.a")],
        [("/a", b"3")],  # back again: added (it was not in the view below)
        [Entry("/.wh.b"), ("/b", b"4")],  # deleted and re-added in one layer: modified
    ])
    changes = [(f.path, f.layer_index, f.change) for f in image.files]
    assert changes == [("/a", 0, Change.ADDED), ("/b", 0, Change.ADDED), ("/a", 1, Change.DELETED),
                       ("/a", 2, Change.ADDED), ("/b", 3, Change.DELETED), ("/b", 3, Change.MODIFIED)]
    assert _graves(image) == {("/a", 0, 1, "whiteout"), ("/b", 0, 3, "whiteout")}
    assert _visible(image) == {"/a": 2, "/b": 3}


def test_implicit_directories_and_file_replacing_directory(tmp_path: Path) -> None:
    image = _image(tmp_path, [
        [("/x/y/z", b"deep"), ("/d/f", b"f")],  # no directory entries at all
        [Entry("/x/.wh.y"), ("/d", b"now a file")],
    ])
    assert _visible(image) == {"/d": 1}
    assert _graves(image) == {("/x/y/z", 0, 1, "whiteout"), ("/d/f", 0, 1, "shadowed")}


def test_whiteout_of_missing_path_and_aufs_metadata(tmp_path: Path) -> None:
    image = _image(tmp_path, [
        [("/keep", b"k")],
        [Entry("/.wh.nothing-here"), Entry("/.wh..wh.plnk"), Entry("/.wh..wh.aufs")],
    ])
    assert [(f.path, f.change) for f in image.files] == [("/keep", Change.ADDED),
                                                         ("/nothing-here", Change.DELETED)]
    assert image.graveyard == [] and image.layers[1].files_deleted == 1


def test_merge_duplicates_in_one_layer() -> None:
    first = FileEntry("/f", 0, EntryType.FILE, sha256="1")
    second = FileEntry("/f", 0, EntryType.FILE, sha256="2", flags=frozenset({"duplicate"}))
    graveyard, counts = merge([[first, second]])
    assert [(g.path, g.added_layer, g.hidden_layer, g.how, g.sha256) for g in graveyard] == [
        ("/f", 0, 0, "duplicate", "1")]
    assert second.visible and not first.visible and second.change is Change.ADDED
    assert (counts[0].added, counts[0].modified) == (2, 0)


def test_whiteouts_apply_only_to_lower_layers() -> None:
    lower = FileEntry("/dir/old", 0, EntryType.FILE)
    new = FileEntry("/dir/new", 1, EntryType.FILE)
    opaque = FileEntry("/dir", 1, EntryType.DIR, flags=frozenset({"opaque"}), change=Change.DELETED)
    graveyard, _ = merge([[lower], [new, opaque]])  # the marker comes after the new file in the tar
    assert new.visible and not lower.visible
    assert [(g.path, g.how) for g in graveyard] == [("/dir/old", "opaque")]
