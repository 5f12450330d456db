"""Prometheus metrics for Gristmill (docs/metrics.md lists every series and who serves it).

- `cluster`: a scrape-time collector reading queue depths and worker heartbeats from Redis and
  job counts from PostgreSQL, served by the api.
- `publish`: counts task messages a process publishes and stamps them with their publish time.
- `task_metrics`: per-task counters and histograms recorded by worker processes.
- `multiproc`: prometheus multiprocess mode for prefork workers.
- `heartbeat`: the worker liveness record in Redis and the liveness-probe file.
"""
