"""Keep the loaded persona/rubric library current with the folders on disk.

Educators may edit YAML in their own editor: the app notices a changed, added or removed file
(by name, size and mtime) at most every ``interval_s`` and reloads the whole library, so a
half-saved file shows up as an error in the Author tab rather than breaking the app.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from simulator.content.library import YAML_SUFFIXES, Library, load_library

Signature = tuple[tuple[str, int, int], ...]


def folder_signature(folders: list[Path]) -> Signature:
    items: list[tuple[str, int, int]] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if p.suffix in YAML_SUFFIXES and p.is_file():
                st = p.stat()
                items.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(sorted(items))


class LiveLibrary:
    """``get()`` returns the current library, reloading it when the folders changed."""

    def __init__(self, personas: list[Path], rubrics: list[Path], interval_s: float = 1.0,
                 on_reload: Callable[[Library], None] | None = None,
                 initial: Library | None = None) -> None:
        self.personas, self.rubrics, self.interval_s = list(personas), list(rubrics), interval_s
        self.on_reload = on_reload
        self._lock = threading.Lock()
        self._checked = 0.0
        self._signature = folder_signature([*self.rubrics, *self.personas])
        self._library = (initial if initial is not None
                         else load_library(self.personas, self.rubrics))
        self.reloads = 0

    def get(self) -> Library:
        now = time.monotonic()
        if now - self._checked < self.interval_s:
            return self._library
        with self._lock:
            self._checked = now
            sig = folder_signature([*self.rubrics, *self.personas])
            if sig != self._signature:
                self._library = load_library(self.personas, self.rubrics)
                self._signature = sig
                self.reloads += 1
                if self.on_reload is not None:
                    self.on_reload(self._library)
        return self._library

    def force(self) -> Library:
        """Reload now (after the app itself saved a file)."""
        self._checked = 0.0
        self._signature = ()
        return self.get()
