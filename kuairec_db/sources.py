"""Finding the KuaiRec files (folder, unpacked archive, or KuaiRec.zip) and checking them."""

from __future__ import annotations

import csv
import logging
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from kuairec_db.errors import UserError
from kuairec_db.schema import CR_PLACEHOLDER, SOURCES, TEXT_SOURCES

log = logging.getLogger(__name__)

ARCHIVE_DIRS = ("KuaiRec 2.0/data", "KuaiRec/data")
ARCHIVE_NAME = "KuaiRec.zip"
DATA_ENV = "KUAIREC_DATA"
GET_REAL_DATA = "python -m kuairec_db download && python -m kuairec_db build --data KuaiRec.zip"


@dataclass
class DataSource:
    """Where each input file is read from, and how to name it in messages."""

    kind: str  # "kuairec_files" or "synthetic_demo"
    location: str  # what the user gave or what was found, for messages and build_info
    files: dict[str, Path] = field(default_factory=dict)  # source name -> file DuckDB reads
    display: dict[str, str] = field(default_factory=dict)  # source name -> name for messages
    originals: dict[str, Path] = field(default_factory=dict)  # source name -> file as given


def _has_csvs(folder: Path) -> bool:
    return any((folder / name).is_file() for name, _ in SOURCES.values())


def _folder_source(folder: Path, location: str) -> DataSource:
    missing = [name for name, _ in SOURCES.values() if not (folder / name).is_file()]
    if missing:
        raise UserError(f"{folder}: missing KuaiRec file(s): {', '.join(missing)}")
    src = DataSource("kuairec_files", location)
    for source, (name, _) in SOURCES.items():
        path = folder / name
        src.files[source] = path
        src.originals[source] = path
        src.display[source] = str(path)
    return src


def _zip_source(archive: Path, work_dir: Path) -> DataSource:
    """Extract the seven CSVs of a KuaiRec archive into work_dir (removed by the caller)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = {}
            for info in zf.infolist():
                base = info.filename.rsplit("/", 1)[-1]
                if info.is_dir() or base.startswith("._") or "__MACOSX" in info.filename:
                    continue
                if any(base == name for name, _ in SOURCES.values()):
                    # Prefer the copy under a data/ folder when the archive holds several.
                    if base not in members or "/data/" in info.filename:
                        members[base] = info
            missing = [name for name, _ in SOURCES.values() if name not in members]
            if missing:
                raise UserError(
                    f"{archive}: the archive lacks KuaiRec file(s): {', '.join(missing)}"
                )
            # Every member's header is checked in the archive, before anything is extracted.
            for source, (name, _) in SOURCES.items():
                with zf.open(members[name]) as fin:
                    first_line = fin.readline(MAX_HEADER_BYTES + 1)
                parse_header(source, first_line, f"{archive}:{members[name].filename}")
            out = work_dir / "zip"
            out.mkdir(parents=True, exist_ok=True)
            src = DataSource("kuairec_files", str(archive))
            for source, (name, _) in SOURCES.items():
                info = members[name]
                log.info(
                    "extracting %s from %s (%.0f MB)", name, archive.name, info.file_size / 1e6
                )
                target = out / name
                with zf.open(info) as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
                src.files[source] = target
                src.originals[source] = archive
                src.display[source] = f"{archive}:{info.filename}"
            return src
    except zipfile.BadZipFile as exc:
        raise UserError(f"{archive}: not a readable zip archive ({exc})") from None
    except (zipfile.LargeZipFile, EOFError, zlib_error()) as exc:
        raise UserError(f"{archive}: damaged zip archive ({exc})") from None


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


def locate(path: Path) -> tuple[str, Path]:
    """("folder", the folder holding the CSVs) or ("zip", the archive), without reading data.

    path is a folder of CSVs, a folder holding ``KuaiRec 2.0/data``, or a KuaiRec.zip.
    """
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise UserError(
                f"{path}: not a zip archive (give a folder of KuaiRec CSVs or KuaiRec.zip)"
            )
        return "zip", path
    if _has_csvs(path):
        return "folder", path
    for sub in ARCHIVE_DIRS:
        if (path / sub).is_dir():
            return "folder", path / sub
    if (path / ARCHIVE_NAME).is_file():
        return "zip", path / ARCHIVE_NAME
    raise UserError(
        f"{path}: no KuaiRec files here (expected big_matrix.csv ..., 'KuaiRec 2.0/data' "
        f"or {ARCHIVE_NAME})"
    )


def fingerprints(kind: str, path: Path) -> dict[str, str]:
    """Per source, a cheap fingerprint of its file as found (path, size, modification time)."""

    def of(file: Path) -> str:
        st = file.stat()
        return f"{file.resolve()}:{st.st_size}:{st.st_mtime_ns}"

    if kind == "zip":
        return {source: f"zip:{of(path)}:{name}" for source, (name, _) in SOURCES.items()}
    out = {}
    for source, (name, _) in SOURCES.items():
        file = path / name
        out[source] = f"file:{of(file)}" if file.is_file() else "missing"
    return out


def resolve_path(path: Path, work_dir: Path) -> DataSource:
    """The files of a located source, extracting a zip into work_dir (removed by the caller)."""
    kind, found = locate(path)
    if kind == "zip":
        return _zip_source(found, work_dir)
    return _folder_source(found, str(found))


def find_default(cwd: Path) -> Path | None:
    """$KUAIREC_DATA, then ./KuaiRec 2.0/data, ./KuaiRec/data, ./KuaiRec.zip."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    for candidate in (*ARCHIVE_DIRS, ARCHIVE_NAME):
        if (cwd / candidate).exists():
            return cwd / candidate
    return None


# Longer than any KuaiRec header (the widest, item_daily_features.csv, is about 1 KiB): a
# longer first line is not a header, and is never read whole into memory.
MAX_HEADER_BYTES = 64 * 1024


def check_header(source: str, path: Path, display: str) -> list[str]:
    """Return the file's columns; a missing or repeated column or an empty file is the user's
    error. Reads at most MAX_HEADER_BYTES of the first line."""
    with open(path, "rb") as fh:
        header = parse_header(source, fh.readline(MAX_HEADER_BYTES + 1), display)
        has_row = False  # blank lines after the header do not make a row
        while block := fh.read(1 << 20):
            if block.strip():
                has_row = True
                break
        fh.seek(0, os.SEEK_END)
        if fh.tell():
            fh.seek(-1, os.SEEK_END)
        ends_with_newline = fh.read(1) == b"\n"
    if not has_row:
        raise UserError(f"{display}: has a header but no rows")
    if not ends_with_newline:
        raise UserError(
            f"{display}: the last line has no line end, so the file looks cut short "
            "(truncated copy?); if it is complete, add a final newline"
        )
    return header


def parse_header(source: str, raw_header: bytes, display: str) -> list[str]:
    """The columns of a first line read with readline(MAX_HEADER_BYTES + 1); a header that is
    too long, not UTF-8, empty, or with a missing or repeated column is the user's error."""
    _, expected = SOURCES[source]
    if len(raw_header) > MAX_HEADER_BYTES:
        raise UserError(
            f"{display}: line 1: the header is longer than {MAX_HEADER_BYTES // 1024} KiB "
            "(a KuaiRec header is about 1 KiB): not a KuaiRec CSV file"
        )
    try:
        header_line = raw_header.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{display}: line 1: the header is not UTF-8 text") from None
    if not header_line.strip():
        raise UserError(f"{display}: the file is empty")
    header = next(csv.reader([header_line.rstrip("\r\n")]))
    header = [col.strip().lstrip("\ufeff") for col in header]
    repeated = sorted({col for col in header if header.count(col) > 1})
    if repeated:
        raise UserError(
            f"{display}: line 1: column(s) {', '.join(repeated)} appear more than once in "
            "the header"
        )
    missing = [col for col in expected if col not in header]
    if missing:
        raise UserError(
            f"{display}: line 1: missing column(s) {', '.join(missing)} "
            f"(the header has: {', '.join(header[:12])}{' ...' if len(header) > 12 else ''})"
        )
    return header


def neutralise_bare_cr(path: Path, out: Path) -> int:
    """Copy path to out with every bare carriage return replaced by CR_PLACEHOLDER.

    DuckDB's CSV reader refuses a file with a lone ``\\r`` inside text; staging restores it.
    Streams in 1 MiB blocks. Returns the number of replacements; with none, out is removed.
    """
    placeholder = CR_PLACEHOLDER.encode("utf-8")
    count = 0
    with open(path, "rb") as fin, open(out, "wb") as fout:
        carry = b""
        while block := fin.read(1 << 20):
            chunk = carry + block
            # Hold back a trailing \r: whether it is bare depends on the next block.
            carry = b"\r" if chunk.endswith(b"\r") else b""
            if carry:
                chunk = chunk[:-1]
            parts = chunk.split(b"\r\n")
            count += sum(part.count(b"\r") for part in parts)
            fout.write(b"\r\n".join(part.replace(b"\r", placeholder) for part in parts))
        if carry:
            count += 1
            fout.write(placeholder)
    if not count:
        out.unlink()
    return count


def prepare(src: DataSource, work_dir: Path) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Check every header and neutralise bare CRs in text files.

    Returns each source's columns and, per text source, how many CRs were set aside.
    """
    headers: dict[str, list[str]] = {}
    replaced: dict[str, int] = {}
    for source in SOURCES:
        headers[source] = check_header(source, src.files[source], src.display[source])
        if source in TEXT_SOURCES:
            out = work_dir / f"{source}.cr-safe.csv"
            n = neutralise_bare_cr(src.files[source], out)
            replaced[source] = n
            if n:
                log.info("%s: %d bare carriage returns set aside while parsing", source, n)
                src.files[source] = out
    return headers, replaced


def find_long_line(path: Path, limit: int) -> int | None:
    """The number of the first line of PATH longer than LIMIT bytes, or None. Streams the
    file in 1 MiB blocks and stops there (LIMIT must be larger than a block)."""
    block_size = 1 << 20
    assert limit > block_size
    line_no, length = 1, 0
    with open(path, "rb") as fh:
        while block := fh.read(block_size):
            first = block.find(b"\n")
            if first < 0:
                length += len(block)
            elif length + first > limit:
                return line_no
            else:
                line_no += block.count(b"\n")
                length = len(block) - block.rindex(b"\n") - 1
            if length > limit:
                return line_no
    return None
