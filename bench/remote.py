"""Logs given as URLs: object storage (``s3://``, ``gcs://`` …) and web servers (``https://``).

A log argument of ``bench evaluate`` may be an `fsspec <https://filesystem-spec.readthedocs.io>`_
URL instead of a path: ``s3://bucket/prefix/…`` (s3fs: AWS S3, MinIO, Ceph), ``https://…/log.parquet``
(aiohttp), ``file://…``, ``gcs://`` (gcsfs) and whatever other fsspec backend is installed. fsspec,
not hand-written clients: one well-kept interface over every store, the one Dask itself uses.
Credentials and endpoints come from the backend's usual configuration (for S3 the AWS environment
variables ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_PROFILE``, ``~/.aws/config``, and
``AWS_ENDPOINT_URL`` for MinIO/Ceph); nothing of them travels with a campaign's tasks, so each Dask
worker reads the logs itself with its own credentials.

How a URL is read (in the process that judges it, a campaign's worker):

- a Parquet file (``.parquet``/``.pq``) is streamed row group by row group through pyarrow on the
  fsspec file system (:class:`RemoteFile`, read by :class:`bench.stream.FrameBatches` as a local
  file is): ranged reads, memory flat in the length of the log. Only when it must be judged in one
  batch (no timestamp statistics, frames far out of order) is it downloaded to a temporary file;
- any other file (BLF, ASC, MF4, TRC, candump) is downloaded to a temporary file first (their
  readers want a local file), then read as a local one; the temporary file is removed after;
- a run directory or a directory of segments is downloaded to a temporary directory (frames,
  events, plan, DBCs; not its ``signals/`` or reports), then judged into ``--out`` (never into the
  temporary copy).

Errors name the URL: a missing object or bucket, missing credentials or access denied are
:class:`~bench.errors.InputError` (exit 2); an endpoint that cannot be reached is a
:class:`~bench.errors.HarnessError` (exit 3); a scheme whose fsspec backend is not installed says
which package to install (exit 2).
"""

from __future__ import annotations

import contextlib
import gzip
import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any

from .errors import BenchError, HarnessError, InputError, one_line
from .logfiles.base import format_of
from .logfiles.candump import looks_like_candump
from .rundir import (
    DBC_DIR,
    EVENTS_FILE,
    FRAMES_DIR,
    JUNIT_FILE,
    LOCK_FILE,
    LOG_FILE,
    NOT_LOGS,
    PLAN_FILE,
    REPORT_FILE,
    SIGNALS_DIR,
    SUMMARY_FILE,
    is_log_directory,
)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
PARQUET_SUFFIXES = (".parquet", ".pq")
#: packages that bring a scheme's backend (the rest: fsspec's own hint)
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "http": "aiohttp", "https": "aiohttp"}
#: what a run directory holds that judging it never reads (its outputs)
_OUTPUTS = {SIGNALS_DIR, SUMMARY_FILE, JUNIT_FILE, REPORT_FILE, LOCK_FILE, LOG_FILE}
_UNREACHABLE = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "ConnectionClosedError",
    "ServerTimeoutError",
}
_NO_CREDENTIALS = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}


def is_url(text: object) -> bool:
    """True for ``scheme://…`` (a log to read through fsspec); False for a path."""
    return isinstance(text, str) and _SCHEME.match(text) is not None


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec file system of ``url`` and the path in it.

    Raises :class:`InputError` for an unknown scheme or one whose backend is not installed
    (naming the package to install)."""
    import fsspec
    from fsspec.registry import known_implementations

    scheme = url.split("://", 1)[0].lower()
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        known = known_implementations.get(scheme, {})
        package = _PACKAGES.get(scheme) or known.get("class", "").split(".")[0] or "?"
        hint = known.get("err") or one_line(exc)
        extra = " (or pip install 'bench[s3]')" if package in ("s3fs", "aiohttp") else ""
        raise InputError(
            f"{url}: reading {scheme}:// needs the package {package}: pip install {package}"
            f"{extra} ({hint})"
        ) from None
    except ValueError as exc:
        raise InputError(f"{url}: not a URL bench can read ({one_line(exc)})") from None


def failure(url: str, exc: BaseException) -> BenchError:
    """``exc`` from reading ``url`` as one line naming the URL (InputError or HarnessError)."""
    name = type(exc).__name__
    detail = one_line(str(exc))[:300]
    if isinstance(exc, BenchError):
        return exc
    unreachable = _unreachable_cause(exc)
    if unreachable is not None:  # before FileNotFoundError: fsspec's http raises one for these
        why = one_line(str(unreachable))[:300] or type(unreachable).__name__
        return HarnessError(f"{url}: cannot reach the object store ({why})")
    if isinstance(exc, FileNotFoundError):
        why = "no such object" + (f" ({detail})" if detail and not url.endswith(detail) else "")
        return InputError(f"{url}: {why}")
    if name in _NO_CREDENTIALS:
        return InputError(
            f"{url}: no credentials for the object store ({detail}; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, where the log is read)"
        )
    if isinstance(exc, PermissionError) or "AccessDenied" in detail or "Forbidden" in detail:
        return InputError(f"{url}: access denied ({detail})")
    return HarnessError(f"{url}: cannot read ({name}: {detail})")


def _unreachable_cause(exc: BaseException) -> BaseException | None:
    """The connection failure behind ``exc`` (``exc`` itself or its ``__cause__`` chain), if any.

    fsspec's HTTP file system turns every failed HEAD/GET, a refused connection included, into
    ``FileNotFoundError(url)`` raised *from* the aiohttp error: judged by its type alone, a web
    server that is down would read as a missing log (exit 2) instead of an unreachable store
    (exit 3)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ in _UNREACHABLE or isinstance(
            current, (ConnectionError, TimeoutError)
        ):
            return current
        current = current.__cause__
    return None


@contextlib.contextmanager
def reading(url: str) -> Iterator[None]:
    """Turn any exception of the block into :func:`failure`'s one line."""
    try:
        yield
    except BenchError:
        raise
    except Exception as exc:
        raise failure(url, exc) from None


def _info(fs: Any, path: str, url: str) -> dict[str, Any]:
    with reading(url):
        return fs.info(path)


def _objects(fs: Any, root: str, url: str, maxdepth: int | None = None) -> list[str]:
    """The files under ``root`` (one recursive listing), without the empty "directory marker"
    objects (``prefix/``) that S3 consoles and some tools create."""
    with reading(url):
        found = fs.find(root, maxdepth=maxdepth)
    return [str(f) for f in found if not str(f).endswith("/")]


def _join(url: str, relative: str) -> str:
    return url.rstrip("/") + "/" + relative if relative else url


# -- a remote file, as bench.stream reads it -------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    """A log file in object storage, read where it is (ranged reads) instead of downloaded.

    It answers the few questions :class:`bench.stream.FrameBatches` and :mod:`bench.evaluate`
    ask a single-file log's :class:`~pathlib.Path` (name, suffix, exists, is_dir, size), and
    :func:`arrow_source` gives pyarrow the file system to read it through."""

    url: str
    fs: Any  # fsspec.AbstractFileSystem
    path: str  # in fs
    size: int

    def __str__(self) -> str:
        return self.url

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.path).suffix

    @property
    def suffixes(self) -> list[str]:
        return PurePosixPath(self.path).suffixes

    def exists(self) -> bool:
        return True  # it was found when made (open)

    def is_file(self) -> bool:
        return True

    def is_dir(self) -> bool:
        return False

    def resolve(self) -> RemoteFile:
        return self

    def stat(self) -> SimpleNamespace:
        return SimpleNamespace(st_size=self.size)


def open_file(url: str) -> RemoteFile:
    """The file at ``url`` (InputError/HarnessError naming it when it cannot be found)."""
    fs, path = filesystem(url)
    info = _info(fs, path, url)
    if info.get("type") == "directory":
        raise InputError(f"{url}: a directory, not a log file")
    return RemoteFile(url, fs, path, int(info.get("size") or 0))


def arrow_source(file: Path | RemoteFile) -> tuple[Any, Any]:
    """``(where, filesystem)`` for ``pyarrow.parquet``'s ``ParquetFile``/``read_metadata``: a
    local path and None, or the path in a remote file's store and that store wrapped for Arrow."""
    if not isinstance(file, RemoteFile):
        return file, None
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return file.path, PyFileSystem(FSSpecHandler(file.fs))


@contextlib.contextmanager
def local_copy(file: Path | RemoteFile) -> Iterator[Path]:
    """``file`` itself when local; else downloaded to a temporary file of the same name, removed
    on leaving. An :class:`InputError` about the copy names the URL instead."""
    if not isinstance(file, RemoteFile):
        yield Path(file)
        return
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as temp:
        local = Path(temp) / (file.name or "log")
        with reading(file.url):
            file.fs.get_file(file.path, str(local))
        with renamed(local, file.url):
            yield local


@contextlib.contextmanager
def renamed(local: Path, url: str) -> Iterator[None]:
    """Errors of the block that name the temporary copy ``local`` name ``url`` instead."""
    try:
        yield
    except BenchError as exc:
        text = str(exc)
        if str(local) not in text:
            raise
        raise type(exc)(text.replace(str(local), url.rstrip("/"))) from None


# -- discovery -------------------------------------------------------------------------------------


class _Tree:
    """The files under a prefix (one recursive listing), as directories of names."""

    def __init__(self, files: Sequence[str], root: str) -> None:
        self.files: dict[str, set[str]] = {}  # directory (relative, "" the root) -> file names
        self.dirs: dict[str, set[str]] = {}  # directory -> subdirectory names
        for file in files:
            relative = posixpath.relpath(file, root)
            if relative.startswith("../") or relative == ".":
                continue
            parent, name = posixpath.split(relative)
            self.files.setdefault(parent, set()).add(name)
            while parent:
                up, base = posixpath.split(parent)
                self.dirs.setdefault(up, set()).add(base)
                parent = up

    def is_log(self, directory: str) -> bool:
        """As :func:`bench.campaign.discover.is_log` for a directory (the same rule)."""
        files, dirs = self.files.get(directory, set()), self.dirs.get(directory, set())
        return is_log_directory(posixpath.basename(directory), files, dirs)


def discover_url(url: str, skipped: list[str]) -> list[tuple[str, str]]:
    """The logs at ``url`` as ``(url, label)``: the file or log directory itself, else every log
    found under the prefix (the rules of :mod:`bench.campaign.discover`), sorted by path.

    A URL named with a log format's suffix (``…/drive.blf``) is taken as it is, unlisted: one
    request fewer per log, and a missing object is its worker's ``error`` row, not the end of the
    campaign. A prefix that cannot be listed is one line naming it (exit 2; 3 unreachable)."""
    fs, path = filesystem(url)
    if not url.endswith("/") and format_of(Path(posixpath.basename(path))) is not None:
        return [(url, posixpath.basename(path))]
    info = _info(fs, path, url)
    if info.get("type") != "directory":
        return [(url, posixpath.basename(path.rstrip("/")) or "log")]
    root = str(info.get("name") or path).rstrip("/")
    tree = _Tree(_objects(fs, root, url), root)
    base = url.rstrip("/")
    if tree.is_log(""):
        root, base = _run_of(fs, root, base)
        return [(base, posixpath.basename(root) or "log")]
    found = [(_join(base, relative), relative) for relative in _search(tree, "")]
    return [(u, r) for u, r in found if _keep(fs, root, u, r, skipped)]


def _run_of(fs: Any, root: str, url: str) -> tuple[str, str]:
    """A run directory's ``frames/`` is its run (as for a local path): ``(root, url)`` of the
    run, else of ``frames/`` itself (a bare directory of segments)."""
    parent, name = posixpath.split(root.rstrip("/"))
    if name != FRAMES_DIR or not parent:
        return root, url
    with reading(url):
        siblings = {posixpath.basename(str(p).rstrip("/")) for p in fs.ls(parent, detail=False)}
    if siblings & {EVENTS_FILE, PLAN_FILE, SUMMARY_FILE}:
        return parent, posixpath.dirname(url.rstrip("/"))
    return root, url


def _search(tree: _Tree, directory: str) -> list[str]:
    """Logs under ``directory``, depth first and sorted like the local search."""
    found: list[str] = []
    names = sorted(tree.dirs.get(directory, set()) | tree.files.get(directory, set()))
    for name in names:
        if name.startswith("."):
            continue
        relative = posixpath.join(directory, name) if directory else name
        if name in tree.dirs.get(directory, set()):
            if tree.is_log(relative):
                found.append(relative)  # a run directory is one log: not searched inside
                continue
            found += _search(tree, relative)
        elif name not in NOT_LOGS and format_of(Path(name)) is not None:
            found.append(relative)
    return found


def _keep(fs: Any, root: str, url: str, relative: str, skipped: list[str]) -> bool:
    """A ``.log`` file found by searching counts only when it starts like a candump log."""
    known = format_of(Path(relative))
    if known is None or ".log" not in known[0].suffixes:
        return True
    try:
        with fs.open(posixpath.join(root, relative), "rb") as raw:
            stream = gzip.GzipFile(fileobj=raw) if known[1] else raw
            head = stream.read(256)
    except Exception:  # let the reader say what is wrong, as an error row
        return True
    if looks_like_candump(head):
        return True
    skipped.append(f"{url}: a .log file that is not a candump log")
    return False


def is_log_url(url: str) -> bool:
    """True when ``url`` is one log (a file, a run directory, a directory of segments)."""
    fs, path = filesystem(url)
    info = _info(fs, path, url)
    if info.get("type") != "directory":
        return True
    root = str(info.get("name") or path).rstrip("/")
    return _Tree(_objects(fs, root, url, maxdepth=2), root).is_log("")


# -- judging ---------------------------------------------------------------------------------------


def evaluate_url(
    url: str,
    plan_path: Path | None,
    *,
    dbc_paths: Sequence[Path] | None = None,
    out_dir: Path | None = None,
    timings: dict[str, float] | None = None,
    replace: bool = False,
    selection: Any = None,
) -> tuple[Any, Path]:
    """:func:`bench.evaluate.evaluate_path` of the log at ``url`` (see the module docstring for
    how each kind is read). Same outputs, errors naming the URL."""
    from .evaluate import evaluate_path

    fs, path = filesystem(url)
    info = _info(fs, path, url)
    options = {
        "dbc_paths": dbc_paths,
        "timings": timings,
        "replace": replace,
        "selection": selection,
    }
    if info.get("type") != "directory":
        file = RemoteFile(url, fs, path, int(info.get("size") or 0))
        if file.suffix.lower() in PARQUET_SUFFIXES:
            # read in place; a read that fails midway is the reader's one line (naming the URL)
            return evaluate_path(file, plan_path, out_dir=out_dir, **options)  # type: ignore[arg-type]
        with local_copy(file) as local:
            return evaluate_path(local, plan_path, out_dir=out_dir, **options)  # type: ignore[arg-type]
    root, url = _run_of(fs, str(info.get("name") or path).rstrip("/"), url)
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as temp:
        local = Path(temp) / (posixpath.basename(root) or "log")
        _download_dir(fs, root, local, url)
        target = Path(out_dir) if out_dir is not None else _default_out(plan_path)
        made = out_dir is None
        try:
            with renamed(local, url):
                # into --out (a new directory by default), never into the temporary copy
                return evaluate_path(local, plan_path, out_dir=target, **options)  # type: ignore[arg-type]
        except BaseException:
            if made:
                shutil.rmtree(target, ignore_errors=True)
            raise


def _download_dir(fs: Any, root: str, local: Path, url: str) -> None:
    """The files under ``root`` judging reads (frames, events, plan, DBCs) into ``local``."""
    local.mkdir(parents=True)
    files = _objects(fs, root, url)
    with reading(url):
        for file in files:
            relative = posixpath.relpath(str(file), root)
            if relative.split("/", 1)[0] in _OUTPUTS:
                continue
            if "/" in relative and relative.split("/", 1)[0] not in (FRAMES_DIR, DBC_DIR):
                continue  # other folders are not part of this log
            destination = local / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(str(file), str(destination))
    if not any(local.iterdir()):
        raise InputError(f"{url}: no such log (nothing under the prefix)")


def _default_out(plan_path: Path | None) -> Path:
    """A new ``reports/<time>-<plan>/`` for a downloaded run directory (not judged in place)."""
    from .rundir import DEFAULT_ROOT, new_dated_dir

    return new_dated_dir(DEFAULT_ROOT, Path(plan_path).stem if plan_path else "plan")


__all__ = [
    "RemoteFile",
    "arrow_source",
    "discover_url",
    "evaluate_url",
    "failure",
    "filesystem",
    "is_log_url",
    "is_url",
    "local_copy",
    "open_file",
]
