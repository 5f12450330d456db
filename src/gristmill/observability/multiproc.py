"""Prometheus multiprocess mode for prefork workers, served from the worker's main process.

Each pool child writes its counters to `<kind>_<pid>.db` files in PROMETHEUS_MULTIPROC_DIR; the
main process merges them on every scrape. Children are replaced (grown past
WORKER_MAX_MEMORY_PER_CHILD_MB, crashed, killed at their hard time limit), so files of dead
children are folded into one
`<kind>_archive.db` per kind at scrape time: the totals never go backwards and the number of
files stays bounded by the live pool size.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, start_http_server, values
from prometheus_client.core import Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_DEFAULT_DIR_PREFIX = "gristmill-prometheus-"
# Only additive kinds can be folded; gauges keep their per-pid semantics.
_PER_PROCESS_FILE = re.compile(r"^(counter|histogram|summary)_(\d+)\.db$")


class _Archive(Protocol):
    def read_value(self, key: str) -> tuple[float, float]: ...
    def write_value(self, key: str, value: float, timestamp: float) -> None: ...
    def close(self) -> None: ...


# prometheus_client leaves its multiprocess internals untyped; these give them signatures.
_open_archive: Callable[[str], _Archive] = MmapedDict
_read_file: Callable[[str], Iterator[tuple[str, float, float, int]]] = (
    MmapedDict.read_all_values_from_file
)
_merge: Callable[..., Iterable[Metric]] = MultiProcessCollector.merge
_mark_process_dead: Callable[[int, str], None] = mark_process_dead
_get_value_class: Callable[[], Any] = values.get_value_class

# (pid, configured setting) -> (directory, created here): what this process already prepared.
_prepared: dict[tuple[int, Path | None], tuple[Path, bool]] = {}


def prepare_multiprocess_dir(configured: Path | None) -> tuple[Path, bool]:
    """Choose, create and empty the multiprocess directory; switch prometheus_client to it.

    Call in the worker main process before the pool forks, with the PROMETHEUS_MULTIPROC_DIR
    setting, and before the modules that create metrics are imported: prometheus_client picks
    file-backed values when a metric is created, and fails if the directory does not exist. A
    configured directory must belong to this worker alone: its files are deleted here. None: a
    fresh directory under the temp dir. Returns the directory and whether it was created here.
    Calling it again in the same process returns the same directory and deletes nothing (the
    metrics created in between already write there).
    """
    key = (os.getpid(), configured)
    if key in _prepared:
        return _prepared[key]
    if configured is not None:
        path, created = configured, False
        path.mkdir(parents=True, exist_ok=True)
        # Files left by a previous run of this worker would be added to the new totals.
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        _remove_orphaned_dirs()
        prefix = f"{_DEFAULT_DIR_PREFIX}{os.getpid()}-"
        path, created = Path(tempfile.mkdtemp(prefix=prefix)), True
    # prometheus_client takes the directory from this environment variable only, in every
    # process: the pool children forked after this inherit it and write their metric files
    # there. So the setting is handed to the library here, once, at start-up.
    os.environ[MULTIPROC_ENV] = str(path)
    # prometheus_client picks its value class once, when `prometheus_client.values` is first
    # imported; that import may have happened before this directory existed, so pick again.
    # Metric objects look the class up whenever a labelled child is created, which happens
    # only when a task runs.
    values.ValueClass = _get_value_class()
    _prepared[key] = (path, created)
    return path, created


def _remove_orphaned_dirs() -> None:
    # A worker killed with SIGKILL cannot remove its default directory; the next worker on the
    # same host does, once the pid in the name is gone (in Kubernetes /tmp dies with the pod).
    for candidate in Path(tempfile.gettempdir()).glob(f"{_DEFAULT_DIR_PREFIX}*-*"):
        pid = candidate.name.removeprefix(_DEFAULT_DIR_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not process_is_alive(int(pid)):
            shutil.rmtree(candidate, ignore_errors=True)


def remove_multiprocess_dir(path: Path, created: bool) -> None:
    """At worker shutdown: remove the directory if it was created here; forget it either way."""
    for key in [key for key, (prepared, _) in _prepared.items() if prepared == path]:
        del _prepared[key]
    if created:
        shutil.rmtree(path, ignore_errors=True)


def process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CompactingMultiProcessCollector(Collector):
    """MultiProcessCollector that first folds the files of dead processes into archive files."""

    def __init__(self, path: Path, *, is_alive: Callable[[int], bool] = process_is_alive) -> None:
        self.path = path
        self._is_alive = is_alive
        # Scrapes may overlap (two Prometheus servers); a file must never be read while it is
        # being folded away, or its values would count twice or make the read fail.
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            self._compact()
            files = glob.glob(os.path.join(self.path, "*.db"))
            return list(_merge(files, accumulate=True))

    def compact(self) -> int:
        """Fold files of processes that have exited; returns how many files were folded.

        Also called between scrapes, so the files stay bounded when nobody scrapes.
        """
        with self._lock:
            return self._compact()

    def _compact(self) -> int:
        folded = 0
        archives: dict[str, _Archive] = {}
        try:
            for path in sorted(self.path.glob("*.db")):
                match = _PER_PROCESS_FILE.match(path.name)
                if match is None:
                    continue
                pid = int(match.group(2))
                if pid == os.getpid() or self._is_alive(pid):
                    continue
                kind = match.group(1)
                archive = archives.get(kind)
                if archive is None:
                    archive = archives[kind] = _open_archive(str(self.path / f"{kind}_archive.db"))
                for key, value, timestamp, _ in _read_file(str(path)):
                    current, _ = archive.read_value(key)
                    archive.write_value(key, current + value, timestamp)
                # A crash between the write above and this unlink would count the file twice;
                # the window is microseconds, once per dead child.
                path.unlink()
                folded += 1
        finally:
            for archive in archives.values():
                archive.close()
        return folded


def process_exited(pid: int, path: Path | None) -> None:
    """Bookkeeping for a pool child that exited (removes its live-gauge files)."""
    if path is not None:
        _mark_process_dead(pid, str(path))


def serve_multiprocess_metrics(
    port: int, collector: CompactingMultiProcessCollector, addr: str = "0.0.0.0"
) -> None:
    """Serve the merged metrics of every process of this worker on `port` (daemon thread)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    start_http_server(port, addr=addr, registry=registry)
    logger.info("worker metrics on http://%s:%d/metrics (from %s)", addr, port, collector.path)
