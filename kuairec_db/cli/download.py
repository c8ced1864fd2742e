"""``download``: the real KuaiRec archive, verified."""

from __future__ import annotations

import argparse
import logging
import shlex
from pathlib import Path

from kuairec_db import download as dl
from kuairec_db.cli import common

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``download`` subcommand."""
    parser = subparsers.add_parser(
        "download",
        help="download the real KuaiRec archive (about 432 MB) and verify its MD5",
        description=(
            f"Download {dl.ARCHIVE_NAME} (KuaiRec 2.0, Zenodo record 18164998, about 432 MB)\n"
            "into a directory, verify its MD5 and print its path. An interrupted download\n"
            f"resumes on the next run; an existing {dl.ARCHIVE_NAME} with the right MD5 is reused\n"
            "without any network access."
        ),
        epilog=(
            "example:\n"
            "  python -m kuairec_db download --to data\n"
            f"  python -m kuairec_db build --data data/{dl.ARCHIVE_NAME}"
        ),
        formatter_class=common.RAW,
    )
    parser.add_argument(
        "--to",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="directory to download into, created if needed (default: current directory)",
    )
    parser.add_argument(
        "--url", default=dl.DEFAULT_URL, help="http(s):// or file:// source (default: %(default)s)"
    )
    parser.add_argument(
        "--md5",
        default=dl.DEFAULT_MD5,
        metavar="HEX",
        help="expected MD5 of the archive, or 'none' to skip verification (default: %(default)s)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help=f"download again even if DIR/{dl.ARCHIVE_NAME} exists and its MD5 matches",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Download, print the archive's path on stdout, and log the next step."""
    path = dl.download(
        url=args.url,
        dest_dir=args.to,
        expected_md5=args.md5,
        force=args.force,
        progress=log.isEnabledFor(logging.INFO),
    )
    print(path)
    log.info("next: python -m kuairec_db build --data %s", shlex.quote(str(path)))
    return 0
