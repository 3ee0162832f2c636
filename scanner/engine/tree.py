"""The merged filesystem and its graveyard, from the entries of each layer in order.

Overlay semantics, as Docker and containerd apply layers: a layer's whiteouts apply to the layers
below it (so they are applied before the layer's own entries); ``.wh.NAME`` removes NAME and its
subtree, an opaque marker removes a directory's lower children; a later entry at the same path
shadows the earlier one, and a non-directory replacing a directory takes the subtree with it.
Every entry removed one of these ways goes to the graveyard: it is not in the running container but
it is still in the image. Memory is O(entries): a path -> entry map and a parent -> children index.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Change, EntryType, FileEntry, GraveyardEntry


@dataclass(slots=True)
class LayerCounts:
    added: int = 0
    modified: int = 0
    deleted: int = 0


def _parent(path: str) -> str:
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else "/"


class MergedTree:
    def __init__(self) -> None:
        self.live: dict[str, FileEntry] = {}
        self.children: dict[str, set[str]] = {}
        self.graveyard: list[GraveyardEntry] = []

    def _link(self, path: str) -> None:
        """Register ``path`` under each ancestor (directories may be implicit: no entry of their own)."""
        children = self.children
        while path != "/":
            parent = _parent(path)
            kids = children.get(parent)
            if kids is None:
                children[parent] = {path}
                path = parent
                continue
            kids.add(path)
            return

    def _bury(self, entry: FileEntry, layer: int, how: str) -> None:
        entry.visible = False
        self.graveyard.append(GraveyardEntry(entry.path, entry.type, entry.layer_index, layer, how,
                                             entry.sha256, entry.size, entry.mode))

    def hide(self, path: str, layer: int, how: str, *, include_self: bool,
             removed: set[str] | None = None) -> FileEntry | None:
        """Remove a subtree from the view; returns the entry that was at ``path`` (if removed).
        Removed paths are added to ``removed``."""
        top = None
        if include_self:
            top = self.live.pop(path, None)
            if top is not None:
                self._bury(top, layer, how)
                if removed is not None:
                    removed.add(path)
            kids = self.children.get(_parent(path))
            if kids is not None:
                kids.discard(path)
        stack = list(self.children.pop(path, ()))
        while stack:
            p = stack.pop()
            entry = self.live.pop(p, None)
            if entry is not None:
                self._bury(entry, layer, how)
                if removed is not None:
                    removed.add(p)
            stack.extend(self.children.pop(p, ()))
        return top

    def apply(self, layer: int, entries: list[FileEntry]) -> LayerCounts:
        counts = LayerCounts()
        removed: set[str] = set()
        deleted = Change.DELETED
        deletions = [entry for entry in entries if entry.change is deleted]
        for entry in deletions:  # first: they address the layers below
            entry.visible = False
            if "opaque" in entry.flags:
                self.hide(entry.path, layer, "opaque", include_self=False, removed=removed)
                continue
            top = self.hide(entry.path, layer, "whiteout", include_self=True, removed=removed)
            if top is not None:  # describe what was deleted
                entry.type, entry.sha256, entry.size = top.type, top.sha256, top.size
        live, children, directory = self.live, self.children, EntryType.DIR
        added, modified = Change.ADDED, Change.MODIFIED
        n_added = n_modified = 0
        for entry in entries:
            change = entry.change
            if change is deleted:
                continue
            path = entry.path
            old = live.get(path)
            if old is None:
                change = modified if path in removed else added
                self._link(path)
            elif old.layer_index == layer:  # the same path twice in one layer
                change = old.change
                self._bury(old, layer, "duplicate")
            else:
                change = modified
                self._bury(old, layer, "shadowed")
            if entry.type is not directory and path in children:
                # a non-directory replaces a directory (explicit or implicit): its subtree goes
                self.hide(path, layer, "shadowed", include_self=False)
            entry.change = change
            entry.visible = True
            live[path] = entry
            if change is added:
                n_added += 1
            else:
                n_modified += 1
        counts.added, counts.modified, counts.deleted = n_added, n_modified, len(deletions)
        return counts


def merge(layers: list[list[FileEntry]]) -> tuple[list[GraveyardEntry], list[LayerCounts]]:
    """Apply the layers in order; set ``change`` and ``visible`` on every entry (in place)."""
    tree = MergedTree()
    counts = [tree.apply(i, entries) for i, entries in enumerate(layers)]
    return tree.graveyard, counts
