"""Headless Chromium (Debian's ``chromium`` package) for seeing ``report.html`` as a browser does.

Used by the bundle writer (``screenshot=True`` → ``report.png``) and by the browser test, which
counts the matrix rows in the DOM Chromium built (``--dump-dom``). Flags: headless, no sandbox
(CI runs as root), no GPU, and every background service off (networking, component updates,
sync, first-run), so rendering the report makes no network request; a fresh ``--user-data-dir``
per call keeps runs independent. Every call is bounded by a timeout.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

from llorch_conformance.adapters.api import HarnessError

__all__ = ["chromium_path", "dump_dom", "screenshot_html"]

_CANDIDATES: Final = ("chromium", "chromium-browser", "/usr/bin/chromium")
_FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


def chromium_path() -> str | None:
    for c in _CANDIDATES:
        found = shutil.which(c)
        if found:
            return found
    return None


def _run(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    exe = chromium_path()
    if exe is None:
        raise HarnessError("Chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="llorch-chromium-") as profile:
        cmd = [exe, *_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"Chromium did not finish within {timeout_s:g} s") from exc


def dump_dom(html_path: Path, *, timeout_s: float = 120.0) -> str:
    """The serialised DOM after Chromium loaded ``html_path``."""
    out = _run(["--dump-dom", html_path.resolve().as_uri()], timeout_s)
    if out.returncode != 0 or "<html" not in out.stdout:
        raise HarnessError(
            f"Chromium --dump-dom failed (exit {out.returncode}): {out.stderr[-500:]}"
        )
    return out.stdout


def screenshot_html(
    html_path: Path,
    png_path: Path,
    *,
    width: int = 1400,
    height: int = 2000,
    timeout_s: float = 120.0,
) -> Path:
    """A PNG of the rendered page (``--screenshot``)."""
    png_path.parent.mkdir(parents=True, exist_ok=True)
    out = _run(
        [
            f"--screenshot={png_path.resolve()}",
            f"--window-size={width},{height}",
            html_path.resolve().as_uri(),
        ],
        timeout_s,
    )
    if not png_path.is_file() or png_path.stat().st_size == 0:
        raise HarnessError(
            f"Chromium wrote no screenshot (exit {out.returncode}): {out.stderr[-500:]}"
        )
    return png_path
