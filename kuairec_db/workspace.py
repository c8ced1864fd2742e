"""Writing a database safely: the one way build, tune and exposure-study change a file.

A command that writes ``NAME`` holds the lock file ``.NAME.lock`` throughout, works in files
beside the target named ``.NAME.KIND-PID`` (KIND one of TEMP_KINDS: ``building`` is the new
database, ``work`` a folder for spill files, the demo and tune's trials), and publishes by
checkpointing the new database and renaming it over ``NAME``: a reader of the old file keeps
it, a new reader gets the new one, and a failed or killed command leaves ``NAME`` as it was.
The next command on ``NAME`` removes what a killed one left (``remove_leftovers``, which knows
the files from that one naming rule). A full disk or DuckDB running out of memory ends in one
line saying what was being done and that the previous database is intact.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from pathlib import Path
from types import TracebackType

import duckdb
import filelock

from kuairec_db import runner, validate
from kuairec_db.errors import UserError

log = logging.getLogger(__name__)

STORAGE_VERSION = "v1.0.0"  # readable by DuckDB 1.0 and later (BI tools, duckdb-cli 1.5)
TEMP_KINDS = ("building", "work")  # .NAME.building-PID (the new file), .NAME.work-PID (a folder)


# ---------------------------------------------------------------------------------------------
# Names beside the target


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


def temp_path(target: Path, kind: str, pid: int | None = None) -> Path:
    """``.NAME.KIND-PID`` beside TARGET: the one naming rule of every temporary file."""
    assert kind in TEMP_KINDS, kind
    return target.with_name(f".{target.name}.{kind}-{os.getpid() if pid is None else pid}")


def _is_temp_of(target: Path, path: Path) -> bool:
    kinds = "|".join(TEMP_KINDS)
    # the file itself or a companion DuckDB writes beside it (.wal)
    return (
        re.fullmatch(rf"\.{re.escape(target.name)}\.({kinds})-\d+(\.wal)?", path.name) is not None
    )


def remove_leftovers(target: Path) -> list[Path]:
    """Temporary files of earlier commands that were killed (only call with the lock held)."""
    removed = []
    for path in sorted(target.parent.glob(f".{target.name}.*")):
        if not _is_temp_of(target, path):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# ---------------------------------------------------------------------------------------------
# The lock


class BuildLock:
    """The lock file beside the target, held with the filelock package (flock on Linux and
    macOS, a locked byte on Windows); it holds the holder's pid for the "busy" message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = filelock.FileLock(str(path), timeout=0, thread_local=False)

    def acquire(self, target: Path) -> BuildLock:
        os.close(validate.open_beside(self.path))  # a planted link is refused, not followed
        try:
            holder = self.path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            holder = ""
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise UserError(
                f"{target} is busy: another build (or tune / exposure-study) is writing it "
                f"(pid {holder or 'unknown'}); wait for it to finish"
            ) from None
        try:  # the lock is on the file, not on this handle
            with open(self.path, "w", encoding="utf-8") as fh:
                fh.write(str(os.getpid()))
        except OSError:  # Windows locks a byte of the file: no pid there, the lock holds
            pass
        return self

    def close(self) -> None:
        self._lock.release()


def acquire_lock(target: Path) -> BuildLock:
    return BuildLock(lock_path(target)).acquire(target)


# ---------------------------------------------------------------------------------------------
# Failures worded as one line


def disk_full(exc: BaseException) -> bool:
    """Whether EXC (from DuckDB, of whatever class, or the OS) says the disk is full."""
    return "No space left" in str(exc) or getattr(exc, "errno", None) == errno.ENOSPC


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def sql_str(path: Path) -> str:
    """PATH as the inside of a SQL string literal."""
    return str(path).replace("'", "''")


# ---------------------------------------------------------------------------------------------
# The working copy


class Workspace:
    """Lock TARGET, work beside it, publish atomically, clean up; used as a context manager.

    ``with Workspace(target, "building", "the previous database is intact") as ws:`` takes the
    lock and removes leftovers; ``ws.connect(...)`` opens the new database (an empty one, or a
    copy of TARGET) attached as ``kuairec``; ``ws.publish(con)`` renames it over TARGET. On the
    way out the temporary files go and the lock is released; a full disk or an out-of-memory
    error becomes one UserError naming DOING and saying INTACT. ``memory_in_use`` is the limit
    quoted in that message (a command updates it while a model runs with its own).
    """

    def __init__(self, target: Path, doing: str, intact: str) -> None:
        self.target = target
        self.doing = doing
        self.intact = intact
        self.temp_db = temp_path(target, "building")
        self.work = temp_path(target, "work")
        self.memory_in_use = runner.PIPELINE_MEMORY_LIMIT
        self.bytes_copied = 0  # of TARGET into the working copy (reported in the debug log)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock: BuildLock | None = None

    def __enter__(self) -> Workspace:
        self._lock = acquire_lock(self.target)
        try:
            for path in remove_leftovers(self.target):
                log.info("removed %s, left by an interrupted build, tune or study", path.name)
        except BaseException:
            self._lock.close()
            raise
        return self

    def make_work_folder(self) -> Path:
        self.work.mkdir(exist_ok=True)
        return self.work

    def copy_target(self, to: Path | None = None) -> Path:
        """Copy TARGET to TO (the new database by default); returns TO."""
        to = to or self.temp_db
        shutil.copyfile(self.target, to)
        self.bytes_copied += to.stat().st_size
        log.debug("copied %s (%d bytes) to %s", self.target.name, to.stat().st_size, to.name)
        return to

    def config(self, threads: int, memory_limit: str | None) -> dict[str, str]:
        """DuckDB settings of every connection of a command: threads, spill folder, memory."""
        self.memory_in_use = memory_limit or runner.PIPELINE_MEMORY_LIMIT
        return {
            "threads": str(threads),
            "temp_directory": str(self.make_work_folder() / "spill"),
            "memory_limit": self.memory_in_use,
        }

    def connect(
        self, threads: int, memory_limit: str | None, copy: bool
    ) -> duckdb.DuckDBPyConnection:
        """An in-memory connection with the new database attached as ``kuairec`` and in use:
        empty, or a copy of TARGET when COPY."""
        config = self.config(threads, memory_limit)
        if copy:
            self.copy_target()
        con = duckdb.connect(config=config)
        self._con = con
        con.execute("set enable_progress_bar = false")  # the commands log one line a step
        con.execute(
            f"attach '{sql_str(self.temp_db)}' as kuairec (storage_version '{STORAGE_VERSION}')"
        )
        con.execute("use kuairec")
        return con

    def publish(self, con: duckdb.DuckDBPyConnection) -> None:
        """Checkpoint and detach ``kuairec``, close CON, and rename the new database over
        TARGET: readers of the old file keep it, new readers get this one."""
        publish(con, self.temp_db, self.target)
        self._con = None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._clean_up()
        finally:
            if self._lock is not None:
                self._lock.close()
        if isinstance(exc, duckdb.OutOfMemoryException):
            step = getattr(exc, "kuairec_step", None)  # set by the stage or model that ran out
            at = f" at {step}" if step else ""
            raise runner.out_of_memory(
                exc, f"{self.doing} {self.target.name}{at}", self.memory_in_use, self.intact
            ) from None
        if isinstance(exc, (duckdb.Error, OSError)) and disk_full(exc):
            raise UserError(
                f"disk full while {self.doing} {self.target.name} in {self.target.parent} "
                f"({first_line(exc)}); free some space; {self.intact}"
            ) from None

    def _clean_up(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            except duckdb.Error:
                pass
            self._con = None
        for leftover in (self.temp_db, self.temp_db.with_name(self.temp_db.name + ".wal")):
            leftover.unlink(missing_ok=True)
        shutil.rmtree(self.work, ignore_errors=True)


def publish(con: duckdb.DuckDBPyConnection, temp_db: Path, target: Path) -> None:
    """Checkpoint and detach the database attached as ``kuairec`` (temp_db), close con, and
    rename temp_db over target: readers of the old file keep it, new readers get this one."""
    con.execute("checkpoint")
    con.execute("use memory")
    con.execute("detach kuairec")
    con.close()
    os.replace(temp_db, target)
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomically(path: Path, text: str) -> None:
    """Write TEXT to PATH through a temporary file beside it renamed over PATH."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
