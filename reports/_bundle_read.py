"""Reading a proof bundle that came from someone else: a bundle is data, never code.

Every command that reads a bundle — ``verify``, ``replay``, ``diff``, ``matrix`` and the run
gate's ``--baseline`` — reads it through :class:`BundleReader`, so one set of rules holds:

* **The tree** holds only directories and regular files, each file with a single link. A
  symbolic link is refused wherever it points (inside or outside), and so are hard links (a file
  shared with a path outside the bundle can change behind it), FIFOs (reading one hangs), devices
  and sockets; names must be printable UTF-8 (a name is echoed in messages). At most
  :data:`MAX_FILES` files, :data:`MAX_TREE_DEPTH` directory levels and :data:`MAX_TOTAL_BYTES`.
* **A file** is opened component by component with ``O_NOFOLLOW`` (a link swapped in after the
  scan still fails) and ``O_NONBLOCK`` (a FIFO swapped in cannot hang the reader); a relative
  name with ``..``, a leading ``/`` or a backslash is refused before anything is opened.
* **JSON** is strict: UTF-8, at most :data:`MAX_JSON_BYTES`, no ``NaN``/``Infinity``, no
  duplicate keys, no lone surrogate, integers within ±2**64, finite numbers, nesting at most
  :data:`MAX_DEPTH` — checked before any other code walks the value (recursive code downstream
  could otherwise die of a ``RecursionError``).
* **Types**: each file has its JSON Schema under ``reports/schemas/`` (the fields a reader
  relies on, typed; additive fields allowed), checked with ``jsonschema``.

A breach raises :class:`BundleFormatError` — a :class:`~adapters.api.ConfigError`, so the CLI
prints one line and exits 2 (never 1, the "regression found" code): ``bundle DIR: FILE: what``.
The writer half of the rule (what a bundle may contain so that these readers accept it) is
:func:`bounded_json`, which the bundle writer applies to everything it records.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterator
from functools import cache
from importlib.resources import files
from pathlib import Path, PurePosixPath
from typing import Any, Final

from llorch_conformance.adapters.api import ConfigError

__all__ = [
    "MAX_DEPTH",
    "MAX_FILES",
    "MAX_JSON_BYTES",
    "MAX_TOTAL_BYTES",
    "MAX_TREE_DEPTH",
    "BundleFormatError",
    "BundleReader",
    "bounded_json",
    "check_json_value",
    "one_line",
    "parse_json_bytes",
    "rel_parts",
    "schema_problem",
]

#: Nesting of any JSON document in a bundle (the writer's deepest is about 12).
MAX_DEPTH: Final = 64
#: Size of one JSON file a reader parses (results.json of a large run is tens of MiB).
MAX_JSON_BYTES: Final = 256 * 1024 * 1024
#: Files in one bundle (a full run of five adapters writes a few thousand).
MAX_FILES: Final = 100_000
#: Bytes of all files together (sparse or not: the size the files claim).
MAX_TOTAL_BYTES: Final = 4 * 1024 * 1024 * 1024
#: Directory levels below the bundle root (the writer uses three).
MAX_TREE_DEPTH: Final = 16
#: Integers beyond this are not interoperable JSON numbers (and no field of ours needs them).
MAX_INT: Final = 2**64

_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)
_UNPRINTABLE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")


class BundleFormatError(ConfigError):
    """A bundle (or one of its files) is not what a bundle may be; one line, exit 2."""


def one_line(text: object, limit: int = 200) -> str:
    """``text`` made safe to print on one line: control characters and lone surrogates become
    ``?``, at most ``limit`` characters (a hostile name must not forge lines or crash print)."""
    s = _UNPRINTABLE.sub("?", str(text))
    return s if len(s) <= limit else s[: limit - 1] + "…"


# -- JSON ------------------------------------------------------------------------------------


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 21:  # 2**64 has 20 digits; fail before int() does any work
        raise ValueError(f"integer of {len(text)} digits")
    value = int(text)
    if abs(value) > MAX_INT:
        raise ValueError(f"integer {text} is beyond ±2**64")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {one_line(dup, 60)!r}")
    return out


def check_json_value(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`ValueError` when ``value`` nests deeper than ``max_depth`` or holds a
    lone surrogate (iterative: a hostile depth cannot exhaust the stack here)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise ValueError(f"nested deeper than {max_depth} levels")
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(k, str) and _SURROGATE.search(k):
                    raise ValueError("a key holds a lone surrogate (not UTF-8 text)")
                if isinstance(v, (dict, list)):
                    stack.append((v, depth + 1))
                elif isinstance(v, str) and _SURROGATE.search(v):
                    raise ValueError("a string holds a lone surrogate (not UTF-8 text)")
        elif isinstance(node, list):
            for v in node:
                if isinstance(v, (dict, list)):
                    stack.append((v, depth + 1))
                elif isinstance(v, str) and _SURROGATE.search(v):
                    raise ValueError("a string holds a lone surrogate (not UTF-8 text)")
        elif isinstance(node, str) and _SURROGATE.search(node):
            raise ValueError("a string holds a lone surrogate (not UTF-8 text)")


def parse_json_bytes(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Strict JSON (module docstring); :class:`ValueError` with a short reason otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(
            text,
            parse_constant=_no_constant,
            parse_float=_finite,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise ValueError(f"nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    check_json_value(value, max_depth)
    return value


def bounded_json(value: Any, max_depth: int = MAX_DEPTH - 8, _depth: int = 1) -> Any:
    """What the writer records: ``value`` made acceptable to :func:`parse_json_bytes`.

    Deeper than ``max_depth`` (the caller's own nesting comes on top) becomes a marker string,
    integers beyond ±2**64 and non-finite floats become their text, lone surrogates ``?`` —
    an adapter's odd evidence must never produce a bundle its own readers refuse.
    """
    return _bounded(value, max_depth, _depth)


def _bounded(value: Any, max_depth: int, depth: int) -> Any:
    """:func:`bounded_json`, quick for what evidence is made of: plain dicts, lists and ASCII str.

    Why: the writer bounds every scenario's evidence, ~230k values in a full run. An ASCII
    string cannot hold a surrogate (``isascii`` is a flag lookup) and a plain ``str`` key is its
    own ``str()``, so those skip the regex and, inside containers, the call; every other value
    takes :func:`_bounded_other`, the rules as written. Same result for every input.
    """
    t = type(value)
    if t is str:
        return value if value.isascii() else _SURROGATE.sub("?", value)
    if t is dict:
        if depth > max_depth:
            return f"…[object nested deeper than {max_depth} levels cut]"
        inner = depth + 1
        return {
            (k if type(k) is str and k.isascii() else _SURROGATE.sub("?", str(k))): (
                v if type(v) is str and v.isascii() else _bounded(v, max_depth, inner)
            )
            for k, v in value.items()
        }
    if t is list:
        if depth > max_depth:
            return f"…[array nested deeper than {max_depth} levels cut]"
        inner = depth + 1
        return [
            v if type(v) is str and v.isascii() else _bounded(v, max_depth, inner) for v in value
        ]
    return _bounded_other(value, max_depth, depth)


def _bounded_other(value: Any, max_depth: int, _depth: int) -> Any:
    """The rules of :func:`bounded_json` for any value (subclasses, tuples, numbers ...)."""
    if isinstance(value, dict):
        if _depth > max_depth:
            return f"…[object nested deeper than {max_depth} levels cut]"
        return {
            _SURROGATE.sub("?", str(k)): bounded_json(v, max_depth, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        if _depth > max_depth:
            return f"…[array nested deeper than {max_depth} levels cut]"
        return [bounded_json(v, max_depth, _depth + 1) for v in value]
    if isinstance(value, str):
        return _SURROGATE.sub("?", value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if abs(value) <= MAX_INT:
            return value
        try:
            return str(value)
        except ValueError:  # more digits than Python prints
            return f"<integer of {value.bit_length()} bits>"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return value


@cache
def _schema(name: str) -> Callable[[Any], Any]:
    """The compiled validator of ``schemas/<name>.schema.json`` (our own file, never a bundle's).

    Why fastjsonschema rather than jsonschema here: it compiles the schema once into plain
    checks — 100x faster on summary.json (0.3 ms instead of 60 ms), which matters for ``matrix``
    over many bundles and for large results files; the writer keeps jsonschema for its
    complete list of problems.
    """
    import fastjsonschema

    text = (files("llorch_conformance.reports") / "schemas" / f"{name}.schema.json").read_text(
        "utf-8"
    )
    validate: Callable[[Any], Any] = fastjsonschema.compile(json.loads(text), use_default=False)
    return validate


def schema_problem(value: Any, schema: str) -> str | None:
    """The first violation of ``schemas/<schema>.schema.json`` as ``where: what``, or None."""
    import fastjsonschema

    try:
        _schema(schema)(value)
    except fastjsonschema.JsonSchemaValueException as exc:
        # fastjsonschema names list indexes as digit strings: shown as [i]
        where = "".join(f"[{p}]" if str(p).isdigit() else f".{p}" for p in exc.path[1:])
        what = exc.message.removeprefix(str(exc.name)).strip()
        return f"{one_line(where.lstrip('.'), 80) or '(top level)'}: {one_line(what, 120)}"
    return None


# -- the tree --------------------------------------------------------------------------------


def rel_parts(rel: str) -> tuple[str, ...]:
    """Parts of a relative bundle path; ``ValueError`` for anything that could leave the root."""
    if not rel or "\x00" in rel or "\\" in rel or _UNPRINTABLE.search(rel):
        raise ValueError("not a plain relative file name")
    p = PurePosixPath(rel)
    if p.is_absolute() or any(part in ("", ".", "..") for part in rel.split("/")):
        raise ValueError("leaves the bundle (absolute, or with . or ..)")
    return p.parts


class BundleReader:
    """One bundle directory, scanned once; every read goes through it (module docstring).

    ``files`` maps each regular file's relative POSIX path to its size. The root the user names
    may itself be a link (their choice); nothing below it may be.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.label = one_line(self.root)
        if not self.root.is_dir():
            raise BundleFormatError(f"bundle {self.label}: not a directory")
        self.files: dict[str, int] = {}
        self.dirs: list[str] = []
        self._scan()

    def fail(self, rel: str, what: str) -> BundleFormatError:
        """The one-line error about ``rel`` (raise it)."""
        where = f"{one_line(rel, 120)}: " if rel else ""
        return BundleFormatError(f"bundle {self.label}: {where}{what}")

    def _scan(self) -> None:
        total = 0
        pending: list[tuple[Path, str, int]] = [(self.root, "", 0)]
        while pending:
            path, prefix, depth = pending.pop()
            try:
                entries = list(os.scandir(path))
            except OSError as exc:
                raise self.fail(prefix.rstrip("/"), f"cannot list ({exc.strerror})") from None
            for e in sorted(entries, key=lambda x: x.name):
                rel = prefix + e.name
                try:
                    e.name.encode("utf-8")
                except UnicodeEncodeError:
                    raise self.fail(rel, "the name is not UTF-8") from None
                if _UNPRINTABLE.search(e.name) or "\\" in e.name:
                    raise self.fail(rel, "the name holds control characters or a backslash")
                try:
                    st = e.stat(follow_symlinks=False)
                    target = os.readlink(e.path) if stat.S_ISLNK(st.st_mode) else ""
                except OSError as exc:  # changed under the scan
                    raise self.fail(rel, f"cannot be read ({exc.strerror})") from None
                if stat.S_ISLNK(st.st_mode):
                    target = one_line(target, 80)
                    raise self.fail(
                        rel, f"is a symbolic link (to {target}); a bundle holds no links"
                    )
                if stat.S_ISDIR(st.st_mode):
                    if depth + 1 > MAX_TREE_DEPTH:
                        raise self.fail(rel, f"directories nested deeper than {MAX_TREE_DEPTH}")
                    self.dirs.append(rel)
                    pending.append((Path(e.path), rel + "/", depth + 1))
                    continue
                if not stat.S_ISREG(st.st_mode):
                    raise self.fail(rel, "is not a regular file (FIFO, device or socket)")
                if st.st_nlink > 1:
                    raise self.fail(
                        rel, f"is a hard link ({st.st_nlink} names); a bundle holds no links"
                    )
                self.files[rel] = st.st_size
                total += st.st_size
                if len(self.files) > MAX_FILES:
                    raise self.fail("", f"more than {MAX_FILES} files")
                if total > MAX_TOTAL_BYTES:
                    raise self.fail("", f"files larger than {MAX_TOTAL_BYTES} bytes in all")

    def has(self, rel: str) -> bool:
        return rel in self.files

    # -- opening ---------------------------------------------------------------------------
    def _open(self, rel: str) -> int:
        """A read-only descriptor of ``rel``, no link followed on the way (module docstring)."""
        try:
            parts = rel_parts(rel)
        except ValueError as exc:
            raise self.fail(rel, str(exc)) from None
        try:
            fd = os.open(self.root, os.O_RDONLY | _O_DIRECTORY)
        except OSError as exc:
            raise self.fail("", f"cannot open ({exc.strerror})") from None
        try:
            for part in parts[:-1]:
                nfd = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nfd
            ffd = os.open(parts[-1], os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK, dir_fd=fd)
        except OSError as exc:
            why = (
                "is a symbolic link"
                if exc.errno == errno.ELOOP
                else f"cannot open ({exc.strerror})"
            )
            raise self.fail(rel, why) from None
        finally:
            os.close(fd)
        st = os.fstat(ffd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            os.close(ffd)
            raise self.fail(rel, "is not a plain regular file")
        return ffd

    def read_bytes(self, rel: str, max_bytes: int) -> bytes:
        fd = self._open(rel)
        with os.fdopen(fd, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise self.fail(rel, f"is {size} bytes (limit {max_bytes})")
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise self.fail(rel, f"grew beyond {max_bytes} bytes while read")
        return data

    def chunks(self, rel: str) -> Iterator[bytes]:
        fd = self._open(rel)
        with os.fdopen(fd, "rb") as fh:
            yield from iter(lambda: fh.read(1 << 16), b"")

    def sha256(self, rel: str) -> str:
        h = hashlib.sha256()
        for chunk in self.chunks(rel):
            h.update(chunk)
        return h.hexdigest()

    def first_lines(self, rel: str, n: int, max_line: int = 1 << 16) -> list[str]:
        """Up to ``n`` lines (each cut at ``max_line`` bytes), decoded with replacement."""
        fd = self._open(rel)
        out: list[str] = []
        with os.fdopen(fd, "rb") as fh:
            for _ in range(n):
                line = fh.readline(max_line)
                if not line:
                    break
                out.append(line.decode("utf-8", "replace").rstrip("\r\n"))
        return out

    def json(
        self,
        rel: str,
        *,
        schema: str | None = None,
        required: bool = True,
        max_bytes: int = MAX_JSON_BYTES,
    ) -> Any:
        """The parsed, checked content of a JSON file; ``None`` for an absent optional one."""
        if rel not in self.files:
            if required:
                raise self.fail(rel, "is missing (is this a proof bundle?)")
            return None
        data = self.read_bytes(rel, max_bytes)
        try:
            value = parse_json_bytes(data)
        except ValueError as exc:
            raise self.fail(rel, str(exc)) from None
        if schema is not None:
            problem = schema_problem(value, schema)
            if problem is not None:
                raise self.fail(rel, f"{problem} (schemas/{schema}.schema.json)")
        return value
