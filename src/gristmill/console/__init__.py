"""What the operator console shows: queues, workers, schedules, job overview and live streams.

Plain functions over a Redis client and a session, so the api routes and the CLI call the same
code."""
