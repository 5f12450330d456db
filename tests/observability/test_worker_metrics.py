"""Worker-side metrics and liveness with real prefork worker processes."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import redis

from gristmill.celery_app import celery_app
from gristmill.db import Database
from gristmill.observability.cluster import ClusterCollector
from gristmill.observability.heartbeat import delete_worker_record
from gristmill.observability.multiproc import process_is_alive
from gristmill.observability.task_metrics import TASK_LABELS
from gristmill.settings import Settings
from tests.observability import worker_app
from tests.observability.support import (
    ObsWorker,
    Samples,
    add_to_metrics_file,
    samples_of,
    value,
)
from tests.support.stack import wait_until


def _stale_started_file(directory: Path, labels: dict[str, str]) -> None:
    """A counter file a previous run of the worker left behind, claiming 100 started tasks."""
    directory.mkdir(parents=True, exist_ok=True)
    ordered = {name: labels[name] for name in TASK_LABELS}
    add_to_metrics_file(
        directory / "counter_1.db", "celery_task_started", "celery_task_started_total", ordered, 100
    )


def test_prefork_worker_counts_every_outcome(obs_worker: ObsWorker, tmp_path: Path) -> None:
    multiproc_dir = tmp_path / "prometheus"
    labels_of = {
        task: {"name": task, "hostname": obs_worker.nodename, "queue_name": obs_worker.queue}
        for task in (worker_app.OK_TASK, worker_app.FAIL_TASK, worker_app.RETRY_TASK)
    }
    _stale_started_file(multiproc_dir, labels_of[worker_app.OK_TASK])
    obs_worker.start({"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)})

    sends = {worker_app.OK_TASK: 3, worker_app.FAIL_TASK: 2, worker_app.RETRY_TASK: 1}
    for task, count in sends.items():
        for priority in range(count):
            celery_app.send_task(task, queue=obs_worker.queue, priority=priority)

    def finished() -> Samples | None:
        samples = obs_worker.scrape()
        done = (
            value(samples, "celery_task_succeeded_total", **labels_of[worker_app.OK_TASK]) == 3
            and value(samples, "celery_task_succeeded_total", **labels_of[worker_app.RETRY_TASK])
            == 1
            and value(
                samples,
                "celery_task_failed_total",
                **labels_of[worker_app.FAIL_TASK],
                exception="ValueError",
            )
            == 2
            # Runtime is observed at task_postrun, just after the outcome counters: wait for it.
            and all(
                value(samples, "celery_task_runtime_count", **labels_of[task]) == runs
                for task, runs in (
                    (worker_app.OK_TASK, 3),
                    (worker_app.FAIL_TASK, 2),
                    (worker_app.RETRY_TASK, 2),
                )
            )
        )
        return samples if done else None

    samples = wait_until(finished, timeout=60, what="the test tasks to finish")
    assert isinstance(samples, dict)
    ok, fail, retry = (labels_of[t] for t in sends)
    # A retried task runs twice: one retry, then one success.
    assert value(samples, "celery_task_started_total", **ok) == 3  # the stale 100 was wiped
    assert value(samples, "celery_task_started_total", **fail) == 2
    assert value(samples, "celery_task_started_total", **retry) == 2
    assert value(samples, "celery_task_retried_total", **retry) == 1
    assert value(samples, "celery_task_retried_total", **ok) == 0
    assert value(samples, "celery_task_succeeded_total", **fail) == 0
    # Counted by the main process when the message arrives.
    assert value(samples, "celery_task_received_total", **ok) == 3
    assert value(samples, "celery_task_received_total", **retry) == 2
    for labels, runs in ((ok, 3), (fail, 2), (retry, 2)):
        assert value(samples, "celery_task_runtime_count", **labels) == runs
        assert value(samples, "gristmill_task_queue_wait_seconds_count", **labels) == runs
        wait_sum = value(samples, "gristmill_task_queue_wait_seconds_sum", **labels)
        assert wait_sum is not None
        assert 0 <= wait_sum < 60
    # The retry is a message published from a pool child.
    sent = [
        sample_value
        for (name, labels), sample_value in samples.items()
        if name == "celery_task_sent_total" and dict(labels)["name"] == worker_app.RETRY_TASK
    ]
    assert sum(sent) == 1

    # Every child ran one task and was replaced; files of exited children are folded away at
    # the next scrape. A child may exit just after a scrape, so poll: scrape, then look.
    per_process = re.compile(r"^(counter|histogram)_(\d+)\.db$")

    def folded() -> bool:
        obs_worker.scrape()
        pids = {
            int(match.group(2))
            for path in multiproc_dir.iterdir()
            if (match := per_process.match(path.name))
        }
        return len(pids) <= obs_worker.concurrency + 1 and all(
            process_is_alive(pid) for pid in pids
        )

    wait_until(folded, timeout=20, what="only live pool processes to keep metric files")
    assert (multiproc_dir / "counter_archive.db").exists()


def test_heartbeat_record_file_and_clean_shutdown(
    obs_worker: ObsWorker, test_settings: Settings, database: Database, tmp_path: Path
) -> None:
    obs_worker.start()
    hostname = obs_worker.nodename
    collector = ClusterCollector(
        lambda: database, test_settings.broker_url, queues=[obs_worker.queue]
    )

    def scrape() -> Samples:
        return samples_of(collector.collect())

    wait_until(
        lambda: value(scrape(), "celery_worker_up", hostname=hostname) == 1,
        timeout=15,
        what="the worker to read up",
    )
    heartbeat_file = tmp_path / "worker.heartbeat"
    first_mtime = heartbeat_file.stat().st_mtime
    assert time.time() - first_mtime < 10
    wait_until(
        lambda: heartbeat_file.stat().st_mtime > first_mtime,
        timeout=10,
        what="a heartbeat to touch the liveness file again",
    )

    celery_app.send_task(worker_app.SLEEP_TASK, args=[5], queue=obs_worker.queue)
    wait_until(
        lambda: value(scrape(), "celery_worker_tasks_active", hostname=hostname) == 1,
        timeout=15,
        what="the running task to show as active",
    )
    samples = scrape()
    assert value(samples, "celery_active_worker_count", queue_name=obs_worker.queue) == 1
    assert (
        value(samples, "celery_active_process_count", queue_name=obs_worker.queue)
        == obs_worker.concurrency
    )

    obs_worker.stop(signal.SIGTERM)
    # A clean stop removes the worker from the metrics instead of reporting it down.
    samples = scrape()
    collector.close()
    assert value(samples, "celery_worker_up", hostname=hostname) is None
    assert value(samples, "celery_active_worker_count", queue_name=obs_worker.queue) == 0


def test_killed_worker_reads_down(
    obs_worker: ObsWorker, collector: ClusterCollector, redis_client: redis.Redis
) -> None:
    obs_worker.start()
    hostname = obs_worker.nodename
    wait_until(
        lambda: value(samples_of(collector.collect()), "celery_worker_up", hostname=hostname) == 1,
        timeout=15,
        what="the worker to read up",
    )
    obs_worker.stop(signal.SIGKILL)
    try:
        wait_until(
            lambda: (
                value(samples_of(collector.collect()), "celery_worker_up", hostname=hostname) == 0
            ),
            timeout=15,
            what="the killed worker to read down",
        )
    finally:
        # Otherwise this test worker reads down for 10 minutes, in every later test's metrics.
        delete_worker_record(redis_client, hostname)


def test_hard_time_limit_counts_as_failure_of_the_workers_queue(obs_worker: ObsWorker) -> None:
    obs_worker.start()
    celery_app.send_task(worker_app.HANG_TASK, queue=obs_worker.queue)
    labels = {
        "name": worker_app.HANG_TASK,
        "hostname": obs_worker.nodename,
        "queue_name": obs_worker.queue,
        "exception": "TimeLimitExceeded",
    }
    # Reported by the main process, which has no delivery info for the killed task: the queue
    # comes from the one queue this worker consumes.
    wait_until(
        lambda: value(obs_worker.scrape(), "celery_task_failed_total", **labels) == 1,
        timeout=30,
        what="the hard time limit to be counted",
    )
    # Celery reports that failure twice; once a later task has finished, the main process has
    # handled both reports, and the failure must still be counted once.
    celery_app.send_task(worker_app.OK_TASK, queue=obs_worker.queue)
    ok = {
        "name": worker_app.OK_TASK,
        "hostname": obs_worker.nodename,
        "queue_name": obs_worker.queue,
    }
    wait_until(
        lambda: value(obs_worker.scrape(), "celery_task_succeeded_total", **ok) == 1,
        timeout=30,
        what="a later task to finish",
    )
    assert value(obs_worker.scrape(), "celery_task_failed_total", **labels) == 1
