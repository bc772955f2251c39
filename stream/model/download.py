"""Fetch a weights file over HTTP(S) with a progress bar and a SHA-256 check.

The bytes go to a temporary file beside the target and are renamed into place
only after the checksum matched, so an interrupted or corrupted download never
becomes a cache file that later runs would trust.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path

from tqdm import tqdm

CHUNK = 1 << 20
log = logging.getLogger("depthstream")


class DownloadError(Exception):
    """The file could not be fetched or did not match its checksum."""


def download(url: str, target: Path, sha256: str, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``target`` atomically; raise :class:`DownloadError` on any failure.

    An empty ``sha256`` skips the check (for a private mirror); it is logged.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
    except OSError as exc:
        raise DownloadError(f"cannot write to {target.parent}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out, digest, timeout)
        if not sha256:
            log.warning("no SHA-256 configured for %s; the download is not verified", url)
        elif digest.hexdigest() != sha256.lower():
            raise DownloadError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest.hexdigest()}"
            )
        os.replace(tmp, target)
        return target
    except OSError as exc:
        raise DownloadError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _fetch(url: str, out, digest, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "depthstream"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with tqdm(
                total=expected,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=Path(url).name,
                leave=False,
            ) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: server answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"{url}: {exc.reason}") from None
    except (HTTPException, OSError) as exc:
        raise DownloadError(f"{url}: connection failed midway ({exc!r})") from None
    if expected is not None and received != expected:
        raise DownloadError(f"{url}: connection closed after {received} of {expected} bytes")
