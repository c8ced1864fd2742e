"""``python -m kuairec_db download``: fetch the real KuaiRec archive, resumable and verified.

The archive is streamed to ``DIR/KuaiRec.zip.part`` in 1 MiB chunks while its MD5 is computed.
Only a complete, verified file becomes ``DIR/KuaiRec.zip`` (fsync, then an atomic
``os.replace``), so an older ``KuaiRec.zip`` is never lost to a failed download. An interrupted
download keeps its ``.part`` and the next run resumes it with an HTTP ``Range`` request; the
final MD5 is checked either way. Every failure becomes one :class:`UserError` line.

Size: over 500 lines because one transfer's steps (resume, verify, publish) share its state,
and most of the rest is the wording of each failure as one line.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from kuairec_db import __version__, validate
from kuairec_db.errors import UserError

try:
    import fcntl
except ImportError:  # not POSIX: no lock against a second concurrent download
    fcntl = None

log = logging.getLogger(__name__)

DEFAULT_URL = "https://zenodo.org/api/records/18164998/files/KuaiRec.zip/content"
DEFAULT_MD5 = "261550d472c48eff4990fb13c0e5bcf7"
ARCHIVE_NAME = "KuaiRec.zip"
PART_SUFFIX = ".part"
CHUNK_SIZE = 1 << 20
LOG_EVERY_SECONDS = 10.0

_SCHEMES = ("http", "https", "file")
_MD5_RE = re.compile(r"[0-9a-f]{32}")
_CONTENT_RANGE_RE = re.compile(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE_RE = re.compile(r"\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


# ---------------------------------------------------------------------------------------------
# small helpers


def _reason(exc: BaseException) -> str:
    """The cause of an exception as one short line (no file names: callers name them)."""
    if isinstance(exc, http.client.IncompleteRead):
        return "the connection closed early"
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        if isinstance(exc.reason, BaseException):
            return _reason(exc.reason)
        text = str(exc.reason)
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split()) or type(exc).__name__


def _size(n: int | None) -> str:
    if n is None:
        return "unknown size"
    if n < 1 << 20:
        return f"{n} bytes"
    return f"{n / (1 << 20):.1f} MiB"


def _new_md5():
    return hashlib.md5(usedforsecurity=False)


def normalize_md5(value: str | None) -> str | None:
    """Lower-case 32-hex-digit MD5, or None for no verification (``None`` or ``"none"``)."""
    if value is None:
        return None
    text = value.strip().lower()
    if text == "none":
        return None
    if not _MD5_RE.fullmatch(text):
        raise UserError(
            f"--md5 must be 32 hexadecimal digits or 'none', got {value!r}; "
            f"the published MD5 is {DEFAULT_MD5}"
        )
    return text


def file_md5(path: Path) -> str:
    """MD5 of a file, read in chunks."""
    hasher = _new_md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_SIZE):
            hasher.update(chunk)
    return hasher.hexdigest()


def _check_url(url: str) -> str:
    """An http(s):// or file:// URL; the path of an existing local file becomes a file:// URL."""
    text = url.strip()
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if scheme in _SCHEMES:
        return text
    if not scheme or (os.name == "nt" and len(scheme) == 1):  # "C:\..." on Windows
        local = Path(text).expanduser()
        if local.is_file():
            return local.resolve().as_uri()
    raise UserError(
        f"unsupported URL {text!r}: pass --url with an http://, https:// or file:// URL "
        "(or the path of a local copy of the archive)"
    )


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _open_part(path: Path) -> BinaryIO:
    """Open the partial download for reading and appending, creating it if needed; a symbolic
    link planted there is refused, never followed."""
    fd = validate.open_beside(path)
    try:
        return os.fdopen(fd, "r+b")
    except BaseException:
        os.close(fd)
        raise


def _lock(fh: BinaryIO, part: Path) -> None:
    """Refuse to share the .part with another download running at the same time."""
    if fcntl is None:
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UserError(
            f"another download is writing {part}; wait for it to finish (or stop it), "
            "then run again"
        ) from None
    except OSError:  # a file system without locks: go on unprotected
        pass


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("warning: could not delete %s: %s", path, _reason(exc))


# ---------------------------------------------------------------------------------------------
# the transfer


class _Transfer:
    """One download of ``url`` into the open, locked ``.part`` file ``fh``."""

    def __init__(
        self, url: str, fh: BinaryIO, part: Path, expected: str | None, progress: bool, timeout
    ):
        self.url = url
        self.fh = fh
        self.part = part
        self.expected = expected
        self.progress = progress
        self.timeout = timeout
        self.hasher = _new_md5()
        self.resumed = False

    # -- the steps --------------------------------------------------------------------------

    def run(self) -> tuple[str, int]:
        """Fill the .part with the whole archive; return its MD5 and size."""
        have = self._hash_existing()
        if have and self.expected is not None and self.hasher.hexdigest() == self.expected:
            log.info("%s is already complete and its MD5 matches: no download needed", self.part)
            return self.hasher.hexdigest(), have
        can_resume = urllib.parse.urlsplit(self.url).scheme.lower() in ("http", "https")
        if have and not can_resume:
            log.info("%s: a file:// source is copied from the start, not resumed", self.part)
        offset = have if can_resume else 0

        opened = self._open(offset)
        if opened is None:  # 416: the server says the .part already holds every byte
            log.info("%s already holds all %s the server has", self.part, _size(have))
            return self.hasher.hexdigest(), have
        resp, start, total = opened
        if start != have:
            self.fh.seek(0)
            self.fh.truncate()
            self.hasher = _new_md5()
        self.resumed = start > 0
        with resp:
            return self._stream(resp, start, total)

    def _hash_existing(self) -> int:
        """Hash what an earlier, interrupted run left in the .part; return its size."""
        self.fh.seek(0, os.SEEK_END)
        have = self.fh.tell()
        if not have:
            return 0
        log.info("found %s (%s) from an interrupted download: checking it", self.part, _size(have))
        self.fh.seek(0)
        left = have
        while left:
            chunk = self.fh.read(min(CHUNK_SIZE, left))
            if not chunk:
                break
            self.hasher.update(chunk)
            left -= len(chunk)
        return have - left

    def _request(self, offset: int):
        headers = {
            "User-Agent": f"kuairec_db/{__version__} (python urllib)",
            "Accept-Encoding": "identity",
        }
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(self.url, headers=headers)
        return urllib.request.urlopen(request, timeout=self.timeout)

    def _open(self, offset: int):
        """Send the request; return (response, first byte offset, total size or None).

        Returns None when a resume request is answered 416 with a total equal to ``offset``
        and nothing contradicts it (the .part is complete). Falls back to a plain request
        from byte zero when the server cannot resume.
        """
        try:
            resp = self._request(offset)
        except urllib.error.HTTPError as exc:
            content_range = exc.headers.get("Content-Range", "") if exc.headers else ""
            exc.close()
            if exc.code == 416 and offset:
                match = _UNSATISFIED_RANGE_RE.match(content_range)
                if match and int(match[1]) == offset and self.expected is None:
                    return None
                log.info("the server cannot resume at byte %d: downloading from the start", offset)
                return self._open(0)
            raise UserError(self._http_error(exc.code, exc.reason)) from None
        except urllib.error.URLError as exc:
            raise UserError(self._unreachable(exc)) from None
        except (*_NETWORK_ERRORS, ValueError) as exc:
            raise UserError(self._unreachable(exc)) from None

        length = _int_or_none(resp.headers.get("Content-Length"))
        status = getattr(resp, "status", None)
        if status == 206:
            content_range = resp.headers.get("Content-Range", "")
            match = _CONTENT_RANGE_RE.match(content_range)
            if match is None or int(match[1]) != offset:
                resp.close()
                if not offset:
                    raise UserError(
                        f"{self.url} answered a partial response ({content_range or 'no range'}) "
                        "to a plain request; check --url"
                    )
                log.info(
                    "the server answered the resume request with %r: downloading from the start",
                    content_range,
                )
                return self._open(0)
            if match[3] != "*":
                total = int(match[3])
            else:
                total = None if length is None else offset + length
            log.info("resuming %s at %s of %s", self.part, _size(offset), _size(total))
            return resp, offset, total
        if offset:
            log.info(
                "the server ignored the resume request (HTTP %s): downloading from the start",
                status,
            )
        return resp, 0, length

    def _stream(self, resp, start: int, total: int | None) -> tuple[str, int]:
        """Copy the body into the .part from ``start``; hash it while writing."""
        self.fh.seek(start)
        done = start
        if not start:
            log.info("downloading %s (%s) to %s", self.url, _size(total), self.part)
        bar = tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=ARCHIVE_NAME,
            file=sys.stderr,
            disable=not (self.progress and _is_tty(sys.stderr)),
            leave=True,
        )
        log_lines = self.progress and bar.disable
        began = last_log = time.monotonic()
        with bar:
            while True:
                try:
                    chunk = resp.read(CHUNK_SIZE)
                except _NETWORK_ERRORS as exc:
                    raise UserError(self._interrupted(done, total, _reason(exc))) from None
                if not chunk:
                    break
                try:
                    self.fh.write(chunk)
                except OSError as exc:
                    raise UserError(self._write_failed(exc)) from None
                self.hasher.update(chunk)
                done += len(chunk)
                bar.update(len(chunk))
                now = time.monotonic()
                if log_lines and now - last_log >= LOG_EVERY_SECONDS:
                    last_log = now
                    share = f" ({100 * done / total:.0f}%)" if total else ""
                    rate = (done - start) / max(now - began, 1e-9)
                    log.info(
                        "%s: %s of %s%s, %s/s",
                        ARCHIVE_NAME,
                        _size(done),
                        _size(total),
                        share,
                        _size(int(rate)),
                    )
        if total is not None and done < total:
            raise UserError(self._interrupted(done, total, "the connection closed early"))
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
        except OSError as exc:
            raise UserError(self._write_failed(exc)) from None
        seconds = time.monotonic() - began
        rate = (done - start) / max(seconds, 1e-9)
        log.info("downloaded %s in %.1f s (%s/s)", _size(done - start), seconds, _size(int(rate)))
        return self.hasher.hexdigest(), done

    # -- messages -------------------------------------------------------------------------

    def _unreachable(self, exc: BaseException) -> str:
        if urllib.parse.urlsplit(self.url).scheme.lower() == "file":
            return f"could not read {self.url}: {_reason(exc)}; check --url"
        return f"could not reach {self.url}: {_reason(exc)}; check the network or pass --url"

    def _http_error(self, code: int, reason) -> str:
        text = " ".join(str(reason or "").split())
        if code in (404, 410):
            hint = "the file is not there: check --url"
        elif code in (401, 403):
            hint = "access was refused: check --url"
        elif code == 429 or code >= 500:
            hint = "the server is busy or failing: try again later"
        else:
            hint = "check --url"
        return f"{self.url} answered HTTP {code} {text}".rstrip() + f"; {hint}"

    def _interrupted(self, done: int, total: int | None, why: str) -> str:
        of = f"{done} of {total} bytes" if total is not None else f"{done} bytes"
        return (
            f"the download from {self.url} stopped after {of} ({why}); "
            f"{self.part} is kept: run the same command again to resume"
        )

    def _write_failed(self, exc: OSError) -> str:
        return (
            f"cannot write {self.part}: {_reason(exc)}; free some space or pass --to "
            "with another directory (the partial file is kept and a rerun resumes it)"
        )


def _int_or_none(text: str | None) -> int | None:
    try:
        value = int(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


# ---------------------------------------------------------------------------------------------
# the public function


def _reusable(target: Path, expected: str | None) -> bool:
    """True when an existing archive can be used as it is."""
    if expected is None:
        log.info("%s exists: reusing it unverified (no MD5 given; --force downloads again)", target)
        return True
    log.info("checking the MD5 of the existing %s", target)
    try:
        actual = file_md5(target)
    except OSError as exc:
        raise UserError(
            f"cannot read the existing {target}: {_reason(exc)}; remove it or pass --force"
        ) from None
    if actual == expected:
        log.info("%s is already there and its MD5 matches: reusing it, nothing downloaded", target)
        return True
    log.warning(
        "warning: %s has MD5 %s, expected %s: downloading a new copy "
        "(the old file stays until the new one is verified)",
        target,
        actual,
        expected,
    )
    return False


def download(
    url: str = DEFAULT_URL,
    dest_dir: Path = Path("."),
    expected_md5: str | None = DEFAULT_MD5,
    force: bool = False,
    progress: bool = True,
    timeout: float = 60,
) -> Path:
    """Download the KuaiRec archive into ``dest_dir/KuaiRec.zip`` and return that path.

    ``expected_md5`` None (or ``"none"``) skips verification. An existing archive whose MD5
    matches is reused without any network access unless ``force``. Raises UserError with one
    line for every failure; the .part file is kept when a rerun can resume it.
    """
    url = _check_url(url)
    expected = normalize_md5(expected_md5)
    dest_dir = Path(dest_dir)
    target = dest_dir / ARCHIVE_NAME
    part = dest_dir / (ARCHIVE_NAME + PART_SUFFIX)
    if expected is None:
        log.warning("warning: no MD5 given: the archive will not be verified")

    if target.is_file() and not force and _reusable(target, expected):
        return target

    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the directory {dest_dir}: {_reason(exc)}; "
            "pass --to with a writable directory"
        ) from None
    try:
        fh = _open_part(part)
    except OSError as exc:
        raise UserError(
            f"cannot write {part}: {_reason(exc)}; pass --to with a writable directory"
        ) from None

    transfer = _Transfer(url, fh, part, expected, progress, timeout)
    try:
        _lock(fh, part)
    except BaseException:
        _close_quietly(fh)
        raise
    try:
        try:
            digest, size = transfer.run()
        except OSError as exc:  # trouble with the .part itself: network errors are converted
            raise UserError(
                f"cannot use {part}: {_reason(exc)}; delete it or pass --to with another directory"
            ) from None
    except BaseException as exc:
        empty = _tell_end(fh) == 0
        _close_quietly(fh)
        if empty:
            _remove(part)
        elif isinstance(exc, KeyboardInterrupt):
            log.warning("warning: %s is kept: run the same command again to resume", part)
        raise
    try:
        fh.close()
    except OSError as exc:
        raise UserError(
            f"cannot write {part}: {_reason(exc)}; free some space and run again"
        ) from None

    if expected is not None and digest != expected:
        _remove(part)
        how = " (resumed from an earlier partial download)" if transfer.resumed else ""
        raise UserError(
            f"MD5 mismatch for {url}{how}: expected {expected}, got {digest} ({size} bytes); "
            "the download was deleted: check --url and --md5, then run again"
        )
    if expected is None:
        log.info("MD5 of the download: %s (not verified)", digest)
    else:
        log.info("MD5 verified: %s", digest)
    try:
        os.replace(part, target)
    except OSError as exc:
        raise UserError(
            f"cannot move {part} to {target}: {_reason(exc)}; "
            "check that the target is a writable file (the verified download is kept)"
        ) from None
    _fsync_dir(dest_dir)
    log.info("saved %s", target)
    return target


def _close_quietly(fh: BinaryIO) -> None:
    """Close after a failure: a second error (say, flushing onto a full disk) must not mask it."""
    try:
        fh.close()
    except OSError:
        pass


def _tell_end(fh: BinaryIO) -> int | None:
    try:
        return fh.seek(0, os.SEEK_END)
    except (OSError, ValueError):
        return None
