"""Folding the metric files of exited pool children, and choosing the multiprocess directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from prometheus_client import values

from gristmill.observability.multiproc import (
    MULTIPROC_ENV,
    CompactingMultiProcessCollector,
    prepare_multiprocess_dir,
    remove_multiprocess_dir,
)
from tests.observability.support import add_to_metrics_file, samples_of, value

LABELS = {"name": "gristmill.scrape_account", "hostname": "high@pod", "queue_name": "high"}


def _write(path: Path, metric: str, sample: str, amount: float, **extra: str) -> None:
    add_to_metrics_file(path, metric, sample, {**LABELS, **extra}, amount)


def _counter(directory: Path, pid: int, amount: float) -> None:
    _write(
        directory / f"counter_{pid}.db", "celery_task_started", "celery_task_started_total", amount
    )


def _histogram(directory: Path, pid: int, le: str) -> None:
    path = directory / f"histogram_{pid}.db"
    _write(path, "celery_task_runtime", "celery_task_runtime_bucket", 1, le=le)
    _write(path, "celery_task_runtime", "celery_task_runtime_sum", 0.5)


def test_folding_keeps_totals_and_drops_dead_processes_files(tmp_path: Path) -> None:
    alive = {os.getpid(), 20}
    collector = CompactingMultiProcessCollector(tmp_path, is_alive=lambda pid: pid in alive)
    _counter(tmp_path, 10, 3)
    _counter(tmp_path, 20, 4)
    _histogram(tmp_path, 10, "1.0")
    _histogram(tmp_path, 20, "+Inf")

    first = samples_of(collector.collect())
    assert value(first, "celery_task_started_total", **LABELS) == 7
    assert value(first, "celery_task_runtime_count", **LABELS) == 2
    assert value(first, "celery_task_runtime_bucket", **LABELS, le="1.0") == 1
    assert value(first, "celery_task_runtime_sum", **LABELS) == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_20.db",
        "counter_archive.db",
        "histogram_20.db",
        "histogram_archive.db",
    ]

    # Pid 20 exits, a new child 30 starts: folding again adds to the archive, never resets it.
    alive.discard(20)
    alive.add(30)
    _counter(tmp_path, 30, 1)
    second = samples_of(collector.collect())
    assert value(second, "celery_task_started_total", **LABELS) == 8
    assert value(second, "celery_task_runtime_count", **LABELS) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_30.db",
        "counter_archive.db",
        "histogram_archive.db",
    ]


def test_gauge_files_are_never_folded(tmp_path: Path) -> None:
    collector = CompactingMultiProcessCollector(tmp_path, is_alive=lambda pid: False)
    (tmp_path / "gauge_liveall_10.db").write_bytes(b"")
    assert collector.compact() == 0
    assert (tmp_path / "gauge_liveall_10.db").exists()


@pytest.fixture
def restore_value_class(monkeypatch: pytest.MonkeyPatch) -> None:
    # prepare_multiprocess_dir switches this process's metrics to files; undo it afterwards.
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)


@pytest.mark.usefixtures("restore_value_class")
def test_configured_directory_is_emptied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"stale")
    (directory / "README").write_text("not a metrics file")
    # Remembered by monkeypatch, restored after prepare_multiprocess_dir exported the directory.
    monkeypatch.setenv(MULTIPROC_ENV, "placeholder")

    path, created = prepare_multiprocess_dir(directory)

    assert (path, created) == (directory, False)
    assert os.environ[MULTIPROC_ENV] == str(directory)
    assert sorted(p.name for p in directory.iterdir()) == ["README"]
    assert values.ValueClass is not values.MutexValue
    remove_multiprocess_dir(path, created)
    assert directory.exists()


@pytest.mark.usefixtures("restore_value_class")
def test_default_directory_is_fresh_and_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    # setenv first so monkeypatch remembers the original state and restores it afterwards,
    # whatever prepare_multiprocess_dir writes to os.environ.
    monkeypatch.setenv(MULTIPROC_ENV, "placeholder")
    monkeypatch.delenv(MULTIPROC_ENV)

    path, created = prepare_multiprocess_dir(None)
    try:
        assert created
        assert os.environ[MULTIPROC_ENV] == str(path)
        assert path.is_dir()
        assert list(path.iterdir()) == []
    finally:
        remove_multiprocess_dir(path, created)
    assert not path.exists()


@pytest.mark.usefixtures("restore_value_class")
def test_default_directories_of_dead_workers_are_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, "placeholder")
    monkeypatch.delenv(MULTIPROC_ENV)
    # A pid above the kernel's pid_max limit can never be alive.
    orphan = Path(tempfile.mkdtemp(prefix="gristmill-prometheus-4194305-"))
    (orphan / "counter_1.db").write_bytes(b"left by a killed worker")

    path, created = prepare_multiprocess_dir(None)
    remove_multiprocess_dir(path, created)

    assert not orphan.exists()
    assert path.name.startswith(f"gristmill-prometheus-{os.getpid()}-")


@pytest.mark.usefixtures("restore_value_class")
def test_preparing_again_keeps_the_files_already_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker prepares the directory before its modules create metrics, and worker_init asks
    # again: the second call must not delete what those metrics wrote in between.
    monkeypatch.setenv(MULTIPROC_ENV, "placeholder")
    directory = tmp_path / "multiproc"
    first = prepare_multiprocess_dir(directory)
    written = directory / f"counter_{os.getpid()}.db"
    written.write_bytes(b"written after the first call")

    assert prepare_multiprocess_dir(directory) == first
    assert written.exists()

    remove_multiprocess_dir(*first)
    # Forgotten at removal: a new start prepares (and empties) the directory again.
    prepare_multiprocess_dir(directory)
    assert not written.exists()
    remove_multiprocess_dir(directory, False)
