"""The download command against a real HTTP server on 127.0.0.1 (and file:// URLs).

Nothing here reaches the internet: every server is started by the test, in a thread, on an
ephemeral loopback port.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kuairec_db import download as dl
from kuairec_db.errors import UserError

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = os.urandom(3 * 1024 * 1024 + 12345)  # not a multiple of the 1 MiB chunk
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
OTHER_MD5 = "0" * 32


class _Handler(BaseHTTPRequestHandler):
    """Serves PAYLOAD; the first path segment picks a behaviour.

    ok: honours ``Range`` (206 / 416); plain: ignores ``Range`` (200); truncate: announces the
    full Content-Length but closes after half of it; stall: sends half, then hangs; corrupt:
    wrong bytes; badrange: answers a range request with a 206 for the wrong range;
    chunked: chunked encoding cut off after half; missing: 404; redirect: 302 to ok.
    """

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        server = self.server
        server.requests.append({"path": self.path, "range": self.headers.get("Range")})
        mode = self.path.strip("/").split("/")[0]
        data = server.payload
        if mode == "missing":
            self.send_error(404, "Not Found")
            return
        if mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "/ok/" + dl.ARCHIVE_NAME)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "corrupt":
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]

        start = 0
        requested = self.headers.get("Range")
        if requested and mode == "ok":
            start = int(re.fullmatch(r"bytes=(\d+)-", requested)[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        elif requested and mode == "badrange":
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-{len(data) - 1}/{len(data)}")
        else:
            if mode == "chunked":
                self.protocol_version = "HTTP/1.1"  # chunked needs HTTP/1.1
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/zip")
        if mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "chunked":
            self.wfile.write(b"%x\r\n%s\r\n" % (len(body) // 2, body[: len(body) // 2]))
            self.close_connection = True  # no terminating chunk: the body is cut short
            return
        if mode in ("truncate", "stall"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if mode == "stall":
                server.release.wait(10)
            return
        self.wfile.write(body)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # urllib honours *_proxy variables: make sure loopback requests go direct.
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.payload = PAYLOAD
    srv.requests = []
    srv.release = threading.Event()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def url_of(srv, mode: str) -> str:
    return f"http://127.0.0.1:{srv.server_port}/{mode}/{dl.ARCHIVE_NAME}"


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{dl.ARCHIVE_NAME}"


def fetch(url: str, dest: Path, md5: str | None = PAYLOAD_MD5, **kwargs) -> Path:
    return dl.download(url, dest, expected_md5=md5, progress=False, **kwargs)


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, no_proxy="*", NO_PROXY="*", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "kuairec_db", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def assert_one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# ---------------------------------------------------------------------------------------------
# success


def test_http_download_verified(server, tmp_path):
    path = fetch(url_of(server, "ok"), tmp_path / "sub")
    assert path == tmp_path / "sub" / dl.ARCHIVE_NAME
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / (dl.ARCHIVE_NAME + ".part")).exists()
    assert [r["range"] for r in server.requests] == [None]


def test_file_url(tmp_path):
    source = tmp_path / "src" / "archive.bin"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    path = fetch(source.as_uri(), tmp_path / "out")
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "out" / (dl.ARCHIVE_NAME + ".part")).exists()


def test_file_url_restarts_instead_of_resuming(tmp_path):
    source = tmp_path / "archive.bin"
    source.write_bytes(PAYLOAD)
    out = tmp_path / "out"
    out.mkdir()
    (out / (dl.ARCHIVE_NAME + ".part")).write_bytes(b"garbage that is not a prefix")
    assert fetch(source.as_uri(), out).read_bytes() == PAYLOAD


def test_plain_path_is_accepted_as_url(tmp_path):
    source = tmp_path / "archive.bin"
    source.write_bytes(PAYLOAD)
    assert fetch(str(source), tmp_path / "out").read_bytes() == PAYLOAD


def test_redirect_is_followed(server, tmp_path):
    assert fetch(url_of(server, "redirect"), tmp_path).read_bytes() == PAYLOAD
    assert [r["path"].split("/")[1] for r in server.requests] == ["redirect", "ok"]


def test_existing_verified_copy_is_reused_without_network(server, tmp_path, caplog):
    (tmp_path / dl.ARCHIVE_NAME).write_bytes(PAYLOAD)
    with caplog.at_level(logging.INFO, logger=dl.__name__):
        path = fetch(url_of(server, "ok"), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == []
    assert "reusing" in caplog.text
    # a closed port proves it too: no connection is even attempted
    assert fetch(closed_port_url(), tmp_path) == path


def test_force_downloads_again(server, tmp_path):
    (tmp_path / dl.ARCHIVE_NAME).write_bytes(PAYLOAD)
    fetch(url_of(server, "ok"), tmp_path, force=True)
    assert len(server.requests) == 1


def test_md5_none_skips_verification(server, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger=dl.__name__):
        path = fetch(url_of(server, "corrupt"), tmp_path, md5="none")
    assert path.exists()
    assert "not be verified" in caplog.text


# ---------------------------------------------------------------------------------------------
# resume


def test_interrupted_download_keeps_part_then_resumes(server, tmp_path):
    part = tmp_path / (dl.ARCHIVE_NAME + ".part")
    with pytest.raises(UserError) as info:
        fetch(url_of(server, "truncate"), tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "run the same command again to resume" in message
    assert url_of(server, "truncate") in message
    assert part.stat().st_size == len(PAYLOAD) // 2
    assert not (tmp_path / dl.ARCHIVE_NAME).exists()

    path = fetch(url_of(server, "ok"), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert not part.exists()
    assert server.requests[-1]["range"] == f"bytes={len(PAYLOAD) // 2}-"


def test_server_ignoring_range_restarts(server, tmp_path):
    part = tmp_path / (dl.ARCHIVE_NAME + ".part")
    part.write_bytes(PAYLOAD[:1000])
    assert fetch(url_of(server, "plain"), tmp_path).read_bytes() == PAYLOAD
    assert server.requests[-1]["range"] == "bytes=1000-"
    assert not part.exists()


def test_wrong_content_range_restarts(server, tmp_path):
    (tmp_path / (dl.ARCHIVE_NAME + ".part")).write_bytes(PAYLOAD[:1000])
    assert fetch(url_of(server, "badrange"), tmp_path).read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == ["bytes=1000-", None]


def test_oversized_part_gets_416_and_restarts(server, tmp_path):
    (tmp_path / (dl.ARCHIVE_NAME + ".part")).write_bytes(PAYLOAD + b"extra")
    assert fetch(url_of(server, "ok"), tmp_path).read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [f"bytes={len(PAYLOAD) + 5}-", None]


def test_complete_verified_part_needs_no_network(server, tmp_path):
    (tmp_path / (dl.ARCHIVE_NAME + ".part")).write_bytes(PAYLOAD)
    assert fetch(url_of(server, "ok"), tmp_path).read_bytes() == PAYLOAD
    assert server.requests == []


def test_stalled_server_times_out_and_keeps_part(server, tmp_path):
    with pytest.raises(UserError, match="timed out.*resume"):
        fetch(url_of(server, "stall"), tmp_path, timeout=0.5)
    part = tmp_path / (dl.ARCHIVE_NAME + ".part")
    kept = part.read_bytes()  # whole chunks received before the stall: a prefix
    assert 0 < len(kept) <= len(PAYLOAD) // 2 and PAYLOAD.startswith(kept)
    assert fetch(url_of(server, "ok"), tmp_path).read_bytes() == PAYLOAD
    assert server.requests[-1]["range"] == f"bytes={len(kept)}-"


def test_cut_chunked_response_keeps_part(server, tmp_path):
    with pytest.raises(UserError, match="stopped after .*run the same command again to resume"):
        fetch(url_of(server, "chunked"), tmp_path)
    kept = (tmp_path / (dl.ARCHIVE_NAME + ".part")).read_bytes()
    assert PAYLOAD.startswith(kept)
    assert fetch(url_of(server, "ok"), tmp_path).read_bytes() == PAYLOAD


def test_progress_lines_without_tty(server, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(dl, "LOG_EVERY_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger=dl.__name__):
        dl.download(url_of(server, "ok"), tmp_path, expected_md5=PAYLOAD_MD5, progress=True)
    assert re.search(r"KuaiRec\.zip: 2\.0 MiB of 3\.0 MiB \(66%\)", caplog.text)
    assert "MD5 verified" in caplog.text


# ---------------------------------------------------------------------------------------------
# failures


def test_corrupted_download_is_rejected(server, tmp_path):
    with pytest.raises(UserError) as info:
        fetch(url_of(server, "corrupt"), tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert f"expected {PAYLOAD_MD5}" in message
    assert not (tmp_path / dl.ARCHIVE_NAME).exists()
    assert not (tmp_path / (dl.ARCHIVE_NAME + ".part")).exists()


def test_http_404(server, tmp_path):
    with pytest.raises(UserError, match="HTTP 404") as info:
        fetch(url_of(server, "missing"), tmp_path)
    assert url_of(server, "missing") in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no empty .part left behind


def test_connection_refused(tmp_path):
    url = closed_port_url()
    with pytest.raises(UserError, match="could not reach .*check the network or pass --url"):
        fetch(url, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_no_answer_times_out(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)  # accepted by the kernel, never answered
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/{dl.ARCHIVE_NAME}"
        with pytest.raises(UserError, match="could not reach .*timed out"):
            fetch(url, tmp_path, timeout=0.3)


def test_missing_file_url(tmp_path):
    with pytest.raises(UserError, match="could not read file://"):
        fetch((tmp_path / "nothing.zip").as_uri(), tmp_path / "out")


def test_existing_wrong_copy_survives_failed_downloads(server, tmp_path):
    target = tmp_path / dl.ARCHIVE_NAME
    target.write_bytes(b"an old, damaged archive")
    for mode in ("corrupt", "missing", "truncate"):
        with pytest.raises(UserError):
            fetch(url_of(server, mode), tmp_path)
        assert target.read_bytes() == b"an old, damaged archive"
    # and a verified download finally replaces it
    fetch(url_of(server, "ok"), tmp_path)
    assert target.read_bytes() == PAYLOAD


def test_target_dir_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot create the directory"):
        fetch(closed_port_url(), blocker)


def test_unwritable_part_is_one_line(tmp_path, monkeypatch):
    def refuse(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(dl, "_open_part", refuse)
    with pytest.raises(UserError, match="cannot write .*Permission denied; pass --to") as info:
        fetch(closed_port_url(), tmp_path)
    assert "\n" not in str(info.value)


def test_disk_full_is_one_line_and_keeps_part(server, tmp_path, monkeypatch):
    class FullDisk:
        def __init__(self, fh):
            self._fh = fh

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def write(self, data):
            if self._fh.tell() + len(data) > len(PAYLOAD) // 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self._fh.write(data)

    real_open = dl._open_part
    monkeypatch.setattr(dl, "_open_part", lambda path: FullDisk(real_open(path)))
    with pytest.raises(UserError, match="cannot write .*No space left on device"):
        fetch(url_of(server, "ok"), tmp_path)
    assert (tmp_path / (dl.ARCHIVE_NAME + ".part")).exists()
    monkeypatch.undo()
    assert fetch(url_of(server, "ok"), tmp_path).read_bytes() == PAYLOAD


def test_concurrent_download_is_refused(tmp_path):
    part = tmp_path / (dl.ARCHIVE_NAME + ".part")
    with open(part, "wb") as other:
        dl.fcntl.flock(other.fileno(), dl.fcntl.LOCK_EX)
        with pytest.raises(UserError, match="another download"):
            fetch(closed_port_url(), tmp_path)
    assert part.exists()


def test_bad_md5_and_url_arguments(tmp_path):
    with pytest.raises(UserError, match="32 hexadecimal"):
        fetch("file:///x", tmp_path, md5="abc")
    with pytest.raises(UserError, match="unsupported URL"):
        fetch("ftp://example.invalid/KuaiRec.zip", tmp_path)


# ---------------------------------------------------------------------------------------------
# the real command line


def test_cli_success(server, tmp_path):
    proc = cli("download", "--to", str(tmp_path), "--url", url_of(server, "ok"),
               "--md5", PAYLOAD_MD5)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.strip() == str(tmp_path / dl.ARCHIVE_NAME)
    assert f"python -m kuairec_db build --data {tmp_path / dl.ARCHIVE_NAME}" in proc.stderr
    assert (tmp_path / dl.ARCHIVE_NAME).read_bytes() == PAYLOAD


def test_cli_http_404(server, tmp_path):
    url = url_of(server, "missing")
    proc = cli("download", "--to", str(tmp_path), "--url", url, "--md5", PAYLOAD_MD5)
    line = assert_one_error_line(proc)
    assert proc.returncode == 2
    assert url in line and "404" in line
    assert proc.stdout == ""


def test_cli_connection_refused(tmp_path):
    url = closed_port_url()
    proc = cli("download", "--to", str(tmp_path), "--url", url, "--md5", PAYLOAD_MD5)
    line = assert_one_error_line(proc)
    assert "could not reach" in line and url in line
    assert not (tmp_path / dl.ARCHIVE_NAME).exists()


def test_cli_md5_mismatch(server, tmp_path):
    proc = cli("-q", "download", "--to", str(tmp_path), "--url", url_of(server, "corrupt"),
               "--md5", PAYLOAD_MD5)  # fmt: skip
    line = assert_one_error_line(proc)
    assert "MD5 mismatch" in line and PAYLOAD_MD5 in line
    assert list(tmp_path.iterdir()) == []
