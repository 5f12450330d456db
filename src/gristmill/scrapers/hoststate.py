"""What every worker replica shares about a platform host, in Redis, changed only atomically.

One hash per host, `gristmill:platform-host:<host>`, holds its token bucket, the pause a
platform asked for (Retry-After, an exhausted RateLimit-Remaining) and its circuit breaker;
the set `gristmill:platform-hosts` lists the hosts so readers never SCAN. The Lua scripts
below are the only writers and run on the Redis clock, so pods with skewed clocks agree.
Idle hosts expire after HOST_IDLE_TTL_SECONDS.

This module imports no HTTP code: the api and the metrics collector read state through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import redis

KEY_PREFIX = "gristmill:platform-host:"
HOSTS_KEY = "gristmill:platform-hosts"
HOST_IDLE_TTL_SECONDS = 24 * 3600

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
BREAKER_STATES = (CLOSED, OPEN, HALF_OPEN)


def host_key(host: str) -> str:
    return f"{KEY_PREFIX}{host}"


# Redis 7 replicates a script's effects, so reading TIME before writing is allowed; Redis 6
# needs to be asked (pcall: the call is deprecated and may disappear).
_CLOCK = """pcall(redis.replicate_commands)
local t = redis.call('TIME')"""

# KEYS: host hash, hosts set. ARGV: host, platform, rate (tokens/s, 0 = none), burst,
# max inline wait (ms), probe lease (ms), idle ttl (ms).
# Returns {verdict (0 go, 1 defer), wait ms, reason, flags (1 probe, 2 report a success)}.
ADMIT = (
    _CLOCK
    + """
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
local rate, burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_wait, lease = tonumber(ARGV[5]), tonumber(ARGV[6])
local f = redis.call('HMGET', key, 'state', 'open_until', 'probe_until', 'paused_until',
                     'tokens', 'refill_at', 'horizon', 'failures')
local state = f[1] or 'closed'
local failures = tonumber(f[8]) or 0
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', key, 'platform', ARGV[2], 'rate', ARGV[3], 'burst', ARGV[4], 'seen_at', now)
redis.call('PEXPIRE', key, ARGV[7])
local wait = 0
local paused_until = tonumber(f[4]) or 0
if paused_until > now then
  wait = paused_until - now
  if wait > max_wait then return {1, wait, 'paused', 0} end
end
local probe = 0
if state == 'open' then
  local open_until = tonumber(f[2]) or 0
  if now < open_until then return {1, open_until - now, 'circuit_open', 0} end
  probe = 1
elseif state == 'half_open' then
  local probe_until = tonumber(f[3]) or 0
  if now < probe_until then return {1, probe_until - now, 'circuit_half_open', 0} end
  probe = 1
end
if rate > 0 then
  local tokens = tonumber(f[5]) or burst
  local refill_at = tonumber(f[6]) or now
  tokens = math.min(burst, tokens + math.max(0, now - refill_at) * rate / 1000)
  if tokens < 1 then wait = math.max(wait, math.ceil((1 - tokens) * 1000 / rate)) end
  if wait > max_wait then
    -- Deferred requests get successive slots at the host's rate, so a backlog comes back
    -- spread out instead of all at once.
    local slot = math.max(now + wait, tonumber(f[7]) or 0)
    redis.call('HSET', key, 'tokens', tostring(tokens), 'refill_at', now,
               'horizon', slot + math.ceil(1000 / rate))
    return {1, slot - now, 'rate_limited', 0}
  end
  -- A token not there yet is reserved: the balance goes negative and later callers wait.
  redis.call('HSET', key, 'tokens', tostring(tokens - 1), 'refill_at', now)
end
if probe == 1 then
  redis.call('HSET', key, 'state', 'half_open', 'probe_until', now + lease, 'changed_at', now)
end
local flags = probe
if state ~= 'closed' or failures > 0 then flags = flags + 2 end
return {0, wait, 'ok', flags}
"""
)

# KEYS: host hash. ARGV: 'ok' | 'fail', threshold, window (ms), open (ms), max open (ms),
# failure text. Returns {state after, ms until the circuit may be probed, 1 if this opened it}.
REPORT = (
    _CLOCK
    + """
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
local f = redis.call('HMGET', key, 'state', 'failures', 'window_start', 'cooldown',
                     'open_until')
local state = f[1] or 'closed'
local failures = tonumber(f[2]) or 0
local open_ms, max_open = tonumber(ARGV[4]), tonumber(ARGV[5])
if ARGV[1] == 'ok' then
  if state == 'half_open' then
    redis.call('HSET', key, 'state', 'closed', 'failures', 0, 'cooldown', open_ms,
               'probe_until', 0, 'changed_at', now)
    return {'closed', 0, 0}
  end
  if state == 'closed' and failures > 0 then redis.call('HSET', key, 'failures', 0) end
  return {state, 0, 0}
end
if state == 'open' then
  return {'open', math.max(0, (tonumber(f[5]) or now) - now), 0}
end
local cooldown = open_ms
if state == 'half_open' then
  -- The probe failed: stay away twice as long as last time, up to the maximum.
  cooldown = math.min(max_open, (tonumber(f[4]) or open_ms) * 2)
else
  if now - (tonumber(f[3]) or 0) > tonumber(ARGV[3]) then
    failures = 0
    redis.call('HSET', key, 'window_start', now)
  end
  failures = failures + 1
  redis.call('HSET', key, 'failures', failures, 'last_failure', ARGV[6])
  if failures < tonumber(ARGV[2]) then return {'closed', 0, 0} end
end
redis.call('HSET', key, 'state', 'open', 'open_until', now + cooldown, 'cooldown', cooldown,
           'probe_until', 0, 'changed_at', now, 'last_failure', ARGV[6])
redis.call('HINCRBY', key, 'opened_count', 1)
return {'open', cooldown, 1}
"""
)

# KEYS: host hash. ARGV: pause (ms), reason. Keeps the later of the current and new pause;
# returns {ms until it ends}.
PAUSE = (
    _CLOCK
    + """
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wanted = now + tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
if wanted > current then
  redis.call('HSET', KEYS[1], 'paused_until', wanted, 'pause_reason', ARGV[2])
  return {wanted - now}
end
return {current - now}
"""
)


@dataclass(frozen=True)
class HostState:
    """One host as every worker sees it, read at `now`."""

    host: str
    platform: str
    breaker_state: str
    failures: int
    opened_count: int
    open_until: datetime | None
    last_failure: str | None
    requests_per_second: float
    burst: int
    tokens: float | None
    paused_until: datetime | None
    pause_reason: str | None
    last_seen: datetime | None


def _time(milliseconds: str | None) -> datetime | None:
    if not milliseconds:
        return None
    return datetime.fromtimestamp(float(milliseconds) / 1000, tz=UTC)


def _state(host: str, fields: dict[str, str], now_ms: float) -> HostState:
    rate = float(fields.get("rate") or 0)
    burst = int(float(fields.get("burst") or 1))
    tokens: float | None = None
    if rate > 0:
        stored = float(fields.get("tokens") or burst)
        refill_at = float(fields.get("refill_at") or now_ms)
        tokens = min(burst, stored + max(0.0, now_ms - refill_at) * rate / 1000)
    state = fields.get("state") or CLOSED
    open_until = float(fields.get("open_until") or 0)
    if state == OPEN and open_until <= now_ms:
        # The next request becomes the probe; until one arrives the host is as good as half open.
        state = HALF_OPEN
    paused_until = float(fields.get("paused_until") or 0)
    paused = paused_until > now_ms
    return HostState(
        host=host,
        platform=fields.get("platform") or "",
        breaker_state=state,
        failures=int(fields.get("failures") or 0),
        opened_count=int(fields.get("opened_count") or 0),
        open_until=_time(fields.get("open_until")) if state == OPEN else None,
        last_failure=fields.get("last_failure") or None,
        requests_per_second=rate,
        burst=burst,
        tokens=tokens,
        paused_until=_time(fields.get("paused_until")) if paused else None,
        pause_reason=fields.get("pause_reason") if paused else None,
        last_seen=_time(fields.get("seen_at")),
    )


def read_host_states(client: redis.Redis) -> list[HostState]:
    """Every host some worker talked to in the last day, sorted by host name."""
    hosts = sorted(member.decode() for member in client.smembers(HOSTS_KEY))  # type: ignore[union-attr]
    if not hosts:
        return []
    pipe = client.pipeline(transaction=False)
    pipe.time()
    for host in hosts:
        pipe.hgetall(host_key(host))
    results = pipe.execute()
    seconds, micros = results[0]
    now_ms = int(seconds) * 1000 + int(micros) / 1000
    states: list[HostState] = []
    gone: list[str] = []
    for host, raw in zip(hosts, results[1:], strict=True):
        if not raw:
            gone.append(host)  # expired while idle
            continue
        fields = {key.decode(): value.decode() for key, value in raw.items()}
        states.append(_state(host, fields, now_ms))
    if gone:
        client.srem(HOSTS_KEY, *gone)
    return states
