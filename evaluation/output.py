"""Result folders that are either complete or absent: write into a hidden sibling, then move it into place.

``evaluate.py`` and ``sweep.py`` write many files (tables, plots, a report); a run killed half-way through must not
leave a folder that looks complete and disagrees with itself. :func:`staged_output` gives the writer a temporary
sibling of ``--out`` (same file system, so the final rename is atomic) and moves it into place only when the
writer returns. An existing non-empty ``--out`` is refused unless ``overwrite``; then the previous result is
swapped for the new one in one step where the OS can (Linux ``renameat2(RENAME_EXCHANGE)``), else by two renames.
A killed run leaves ``--out`` as it was (nothing, or the complete previous result) plus a hidden ``.NAME.tmp-PID``
folder that the next run removes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sim.errors import ConfigError

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNPUBLISHED: set[Path] = set()  # staged folders of this process not moved into place yet


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the call is unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(out: Path) -> None:
    """Hidden siblings of ``out`` left by killed runs (their process is gone)."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(tmp|old)-(\d+)$")
    if not out.parent.is_dir():
        return
    for p in out.parent.iterdir():
        m = pattern.match(p.name)
        if m and not _alive(int(m.group(2))):
            shutil.rmtree(p, ignore_errors=True)


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty ``out`` unless ``overwrite`` (one line naming the folder and the option)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; give a folder path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"--out {out}: exists and is not empty; give another --out, or --overwrite to replace it")


def begin_output(out: str | os.PathLike, overwrite: bool = False, copy: bool = False) -> Path:
    """A fresh hidden folder beside ``out`` to write the result into; :func:`publish` moves it into place.
    A run that dies before publishing leaves it behind, hidden, and the next run removes it.

    :param out: the result folder
    :param overwrite: allow replacing an existing non-empty ``out``
    :param copy: start from a copy of the current ``out`` (to add to a published result, still atomically)
    """
    out = Path(out).absolute()
    check_output(out, overwrite or copy)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    if copy and out.is_dir():
        shutil.copytree(out, tmp)
    else:
        tmp.mkdir()
    _UNPUBLISHED.add(tmp)
    return tmp


def discard_unpublished() -> None:
    """Remove this process's staged folders that were not published (the CLI calls it on any exit)."""
    while _UNPUBLISHED:
        shutil.rmtree(_UNPUBLISHED.pop(), ignore_errors=True)


@contextmanager
def staged_output(out: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; when the block completes it becomes ``out`` (replacing the
    previous result with ``overwrite``). On an exception (Ctrl-C included) it is removed and ``out`` is untouched.

    :param out: the result folder
    :param overwrite: replace an existing non-empty ``out``
    """
    tmp = begin_output(out, overwrite)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish(tmp, Path(out).absolute())


def publish(tmp: Path, out: Path) -> None:
    """Move the complete folder ``tmp`` to ``out``, replacing what is there."""
    _UNPUBLISHED.discard(tmp)
    if not out.exists():
        os.replace(tmp, out)
    elif out.is_dir() and not any(out.iterdir()):
        out.rmdir()
        os.replace(tmp, out)
    elif _exchange(tmp, out):  # tmp now holds the previous result
        shutil.rmtree(tmp, ignore_errors=True)
    else:  # two renames: a kill between them leaves no --out (and the previous result in .NAME.old-PID)
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
