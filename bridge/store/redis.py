"""Shared store on Redis (redis-py asyncio), for several bridge instances on one Redis.

`RedisStore` keeps the Store promises the SQLite store keeps: every call is queued
the moment it is made, in call order, and one writer task sends whatever waits as a
single MULTI/EXEC pipeline (N concurrent submits cost one round trip); a read queued
behind writes sees them. What must be atomic beyond one command is a Lua script run
inside that transaction: a message's new state with its indexes and receipts, a
concatenated set completing, an outbox taken over. Scripts go as EVAL (Redis caches
them by hash) rather than EVALSHA: after a Redis restart a NOSCRIPT inside MULTI
would apply the rest of the transaction without the script.

`RedisCluster` and `RedisReceiptQueue` are the shared implementations of
`bridge.core.cluster`: heartbeats, bind counts, throughput, due-timer leases, outbox
ownership and the per-account receipt streams. Everything Redis is in this module.

Redis going away never crashes the bridge: calls fail with StoreUnavailable (the
pipeline answers ESME_RSYSERR, /readyz fails), failed writes are logged, and
redis-py reconnects by itself when Redis is back. Durability is Redis's: run it with
`appendonly yes` (`appendfsync always` for "acknowledged means on disk").
Standalone Redis (or Sentinel): scripts name keys they compute, so not Redis Cluster.

Keys, all under `<prefix>:`
  next_id                    counter behind reserve_ids (blocks in [1, 2**32), wrapping)
  m:<id>                     hash: r = record, l = lifecycle, o = owning instance (outbox)
  lc:<0|1|2>, lc:2:<prov>    sets of unfinished message ids by lifecycle (score = id)
  done                       finished message ids by done_at (purge)
  ob:<first provider>, obp   outbox by first provider of the route; the providers seen
  own:<instance>             outbox message ids an instance is responsible for
  parts, pid:<prov>          part id -> message id; provider id -> message id
  due:<prov>                 accepted message ids by due time (m:<id> d = due time, n = polls)
  schema:due                 set once the messages stored before due times were given one
  seg:<set key>, segs        parts of incomplete concatenated sets; sets by first arrival
  r:<receipt id>             hash: d = record, s = stream entry id, a = system_id
  rq:<system_id>, rqa        per-account receipt stream (group "receipts"); accounts seen
  hb:<instance>, instances   heartbeat (expires after instance_ttl); every instance seen
  binds:<system_id>          bound sessions cluster-wide, scored by expiry
  tp:<system_id>             throughput bucket
  lease:<name>               holder of a once-per-cluster job
  h:<id>                     the message's history events (list), expiring `retention` after the last
  to:<destination>           message ids by created_at (the operator's lookup), trimmed to `retention`
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ExecAbortError, RedisError, ResponseError
from redis.retry import Retry

from bridge.core.cluster import Cluster, Lease, OrphanSink, OwnershipLost, ReceiptQueue, new_instance_id
from bridge.core.history import HistoryEvent, receipt_owner
from bridge.core.message import UPGRADE_DUE, Lifecycle, Message, PendingSegment, Receipt
from bridge.logging import get_logger
from bridge.store.base import MAX_ID_PROBES, MAX_MESSAGE_ID, PURGE_BATCH, Store, StoreUnavailable, id_seed
from bridge.store.records import (
    dump_event,
    dump_message,
    dump_receipt,
    dump_segment,
    load_event,
    load_message,
    load_receipt,
    load_segment,
)

GROUP = "receipts"
_MAX_OPS = 2000  # calls per MULTI/EXEC
_ERROR_LOG_INTERVAL = 1.0  # at most one "store_write_failed" line per second while Redis is away
# What "Redis is away" looks like; any other exception in a handler is a bug and is
# logged with its traceback rather than reported as an outage.
_AWAY = (StoreUnavailable, RedisError, OSError, TimeoutError)

# -- Lua -------------------------------------------------------------------------------

_ADD_RECEIPT = """
local function add_receipt(P, rid, sid, rec)
  local rk = P .. 'r:' .. rid
  if redis.call('EXISTS', rk) == 1 then return 0 end
  local stream = P .. 'rq:' .. sid
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, 'receipts', '0', 'MKSTREAM')
  end
  redis.call('SADD', P .. 'rqa', sid)  -- also when a reader created the stream first
  local eid = redis.call('XADD', stream, '*', 'r', rid, 'd', rec)
  redis.call('HSET', rk, 'd', rec, 's', eid, 'a', sid)
  return 1
end
"""

# A message written with its indexes, provider ids, part ids and receipts. A final
# message never changes again (a late or replayed report on another instance changes
# nothing, and adds no receipt); an outbox write (QUEUED/SENDING) by an instance
# that no longer owns the message is refused (-1).
# An ACCEPTED message's due time is written when it becomes ACCEPTED (later changes
# are `_RESCHEDULE`'s) and removed when it leaves ACCEPTED.
# ARGV: prefix, me, mode (i|u), id, record, lifecycle, provider, first, done_at,
#       due ('' = none), polls, n, provider ids..., n, part ids..., n, (receipt id, system_id, record)...
_SAVE = (
    _ADD_RECEIPT
    + """
local P, me, mode, id, rec = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local l, prov, first, done, due = tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local key = P .. 'm:' .. id
local old = redis.call('HMGET', key, 'l', 'o')
local oldl = tonumber(old[1])
local owner = old[2] or ''
if oldl == 3 then
  if l <= 1 then return -1 end  -- finished meanwhile (an operator gave up on it): no more attempts
  return 0
end
if mode == 'u' and l <= 1 and (oldl == nil or oldl > 1 or owner ~= me) then return -1 end
local newowner = ''
if l <= 1 then newowner = me end
redis.call('HSET', key, 'r', rec, 'l', l, 'o', newowner)
if oldl ~= nil and oldl ~= l then
  redis.call('ZREM', P .. 'lc:' .. oldl, id)
  if oldl == 2 and prov ~= '' then redis.call('ZREM', P .. 'lc:2:' .. prov, id) end
end
if l <= 2 then redis.call('ZADD', P .. 'lc:' .. l, id, id) end
if l == 2 and oldl ~= 2 and prov ~= '' then
  redis.call('ZADD', P .. 'lc:2:' .. prov, id, id)
  if due ~= '' then
    redis.call('ZADD', P .. 'due:' .. prov, due, id)
    redis.call('HSET', key, 'd', due, 'n', ARGV[11])
  end
elseif l ~= 2 and oldl == 2 and prov ~= '' then
  redis.call('ZREM', P .. 'due:' .. prov, id)
  redis.call('HDEL', key, 'd', 'n')
end
if l <= 1 then
  redis.call('ZADD', P .. 'ob:' .. first, id, id)
  redis.call('SADD', P .. 'obp', first)
  redis.call('ZADD', P .. 'own:' .. me, id, id)
elseif oldl ~= nil and oldl <= 1 then
  redis.call('ZREM', P .. 'ob:' .. first, id)
  if owner ~= '' then redis.call('ZREM', P .. 'own:' .. owner, id) end
end
if l == 3 and done ~= '' then redis.call('ZADD', P .. 'done', done, id) end
local i = 12
local n = tonumber(ARGV[i])
for j = 1, n do redis.call('HSET', P .. 'pid:' .. prov, ARGV[i + j], id) end
if n > 0 then  -- what purge deletes, so that it need not decode the record
  redis.call('HSET', key, 'p', prov, 'k', cjson.encode({unpack(ARGV, i + 1, i + n)}))
end
i = i + n + 1
n = tonumber(ARGV[i])
for j = 1, n do redis.call('HSET', P .. 'parts', ARGV[i + j], id) end
if n > 0 then redis.call('HSET', key, 'q', table.concat({unpack(ARGV, i + 1, i + n)}, ' ')) end
i = i + n + 1
n = tonumber(ARGV[i])
for j = 0, n - 1 do
  local b = i + 1 + 3 * j
  add_receipt(P, ARGV[b], ARGV[b + 1], ARGV[b + 2])
end
return 1
"""
)

# ARGV: prefix, then (receipt id, system_id, record)...
_ADD_RECEIPTS = (
    _ADD_RECEIPT
    + """
local added = 0
for b = 2, #ARGV, 3 do added = added + add_receipt(ARGV[1], ARGV[b], ARGV[b + 1], ARGV[b + 2]) end
return added
"""
)

# The history events of one write, and the destination index of the messages it
# inserts. ARGV: prefix, ttl ms, n, (destination, created_at, id)..., (id, event)...
_JOURNAL = """
local P, ttl = ARGV[1], tonumber(ARGV[2])
local n = tonumber(ARGV[3])
for j = 0, n - 1 do
  local b = 4 + 3 * j
  local k = P .. 'to:' .. ARGV[b]
  redis.call('ZADD', k, ARGV[b + 1], ARGV[b + 2])
  redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. (tonumber(ARGV[b + 1]) - ttl / 1000))
  redis.call('PEXPIRE', k, ttl)
end
for b = 4 + 3 * n, #ARGV, 2 do
  local k = P .. 'h:' .. ARGV[b]
  redis.call('RPUSH', k, ARGV[b + 1])
  redis.call('PEXPIRE', k, ttl)
end
return 0
"""

# ARGV: prefix, destination, since, until, limit -> records, oldest first
_FIND_BY_DESTINATION = """
local out = {}
local ids = redis.call('ZRANGEBYSCORE', ARGV[1] .. 'to:' .. ARGV[2], ARGV[3], '(' .. ARGV[4], 'LIMIT', 0, ARGV[5])
for _, id in ipairs(ids) do
  local r = redis.call('HGET', ARGV[1] .. 'm:' .. id, 'r')
  if r then out[#out + 1] = r end
end
return out
"""

# ARGV: prefix, limit -> the fields of the oldest incomplete sets
_INCOMPLETE_SETS = """
local out = {}
for _, sk in ipairs(redis.call('ZRANGE', ARGV[1] .. 'segs', 0, tonumber(ARGV[2]) - 1)) do
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. 'seg:' .. sk)
end
return out
"""

# Up to `limit` finished messages done before the cutoff, with their provider-id and
# part-id entries (named in the fields p, k, q that _SAVE writes; a record stored before
# those fields existed is decoded instead). ARGV: prefix, cutoff, limit -> how many
_PURGE = """
local P = ARGV[1]
local ids = redis.call('ZRANGEBYSCORE', P .. 'done', '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local key = P .. 'm:' .. id
  local v = redis.call('HMGET', key, 'p', 'k', 'q', 'r')
  local prov, pids, parts = v[1], {}, {}
  if v[2] then pids = cjson.decode(v[2]) end
  if v[3] then for part in string.gmatch(v[3], '%S+') do parts[#parts + 1] = part end end
  if not v[2] and not v[3] and v[4] then
    local r = cjson.decode(v[4])
    if type(r[13]) == 'string' and r[13] ~= '' then prov, pids = r[13], r[14] end
    for _, part in ipairs(r[8]) do
      local pid = string.format('%d', part[1])
      if pid ~= id then parts[#parts + 1] = pid end
    end
  end
  if prov and #pids > 0 then redis.call('HDEL', P .. 'pid:' .. prov, unpack(pids)) end
  if #parts > 0 then redis.call('HDEL', P .. 'parts', unpack(parts)) end
  redis.call('DEL', key)
end
if #ids > 0 then redis.call('ZREM', P .. 'done', unpack(ids)) end
return #ids
"""

# New due times of messages still ACCEPTED; a message final or gone loses its entry.
# ARGV: prefix, then (id, provider, due or '', polls)...
_RESCHEDULE = """
local P = ARGV[1]
for b = 2, #ARGV, 4 do
  local id, z = ARGV[b], P .. 'due:' .. ARGV[b + 1]
  local key = P .. 'm:' .. id
  if ARGV[b + 2] ~= '' and redis.call('HGET', key, 'l') == '2' then
    redis.call('ZADD', z, ARGV[b + 2], id)
    redis.call('HSET', key, 'd', ARGV[b + 2], 'n', ARGV[b + 3])
  else
    redis.call('ZREM', z, id)
    redis.call('HDEL', key, 'd', 'n')
  end
end
return 1
"""

# ARGV: prefix, provider, now, limit -> (record, due, polls)... of the due messages
_DUE_MESSAGES = """
local P = ARGV[1]
local z = P .. 'due:' .. ARGV[2]
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))) do
  local v = redis.call('HMGET', P .. 'm:' .. id, 'r', 'd', 'n', 'l')
  if v[1] and v[4] == '2' then
    out[#out + 1] = v[1]
    out[#out + 1] = v[2] or '0'
    out[#out + 1] = v[3] or '0'
  else
    redis.call('ZREM', z, id)
  end
end
return out
"""

# Once per store: messages accepted before due times existed are due at once (their
# connector decides what is left to do). ARGV: prefix, UPGRADE_DUE -> how many
_MIGRATE_DUE = """
local P = ARGV[1]
if redis.call('EXISTS', P .. 'schema:due') == 1 then return 0 end
local n = 0
for _, id in ipairs(redis.call('ZRANGE', P .. 'lc:2', 0, -1)) do
  local key = P .. 'm:' .. id
  local v = redis.call('HMGET', key, 'r', 'd')
  if v[1] and not v[2] then
    local prov = cjson.decode(v[1])[13]
    if type(prov) == 'string' and prov ~= '' then
      redis.call('ZADD', P .. 'due:' .. prov, ARGV[2], id)
      redis.call('HSET', key, 'd', ARGV[2], 'n', 0)
      n = n + 1
    end
  end
end
redis.call('SET', P .. 'schema:due', 1)
return n
"""

# ARGV: prefix, receipt id
_DELETE_RECEIPT = """
local rk = ARGV[1] .. 'r:' .. ARGV[2]
local v = redis.call('HMGET', rk, 's', 'a')
if v[1] then
  local stream = ARGV[1] .. 'rq:' .. v[2]
  redis.call('XACK', stream, 'receipts', v[1])
  redis.call('XDEL', stream, v[1])
end
return redis.call('DEL', rk)
"""

# ARGV: prefix, receipt id, record
_UPDATE_RECEIPT = """
local rk = ARGV[1] .. 'r:' .. ARGV[2]
if redis.call('EXISTS', rk) == 0 then return 0 end
redis.call('HSET', rk, 'd', ARGV[3])
return 1
"""

# Receipts an instance holds go back to the end of their account's stream, for any
# instance to read. ARGV: prefix, receipt ids...
_GIVE_BACK = """
local n = 0
for i = 2, #ARGV do
  local rk = ARGV[1] .. 'r:' .. ARGV[i]
  local v = redis.call('HMGET', rk, 's', 'a', 'd')
  if v[1] then
    local stream = ARGV[1] .. 'rq:' .. v[2]
    redis.call('XACK', stream, 'receipts', v[1])
    redis.call('XDEL', stream, v[1])
    redis.call('HSET', rk, 's', redis.call('XADD', stream, '*', 'r', ARGV[i], 'd', v[3]))
    n = n + 1
  end
end
return n
"""

# Stream entries read by a gone instance, back to the end of the stream. An entry
# whose receipt moved on (acknowledged, or requeued by someone else) is only acked.
# ARGV: prefix, system_id, entry ids...
_REQUEUE_ENTRIES = """
local stream = ARGV[1] .. 'rq:' .. ARGV[2]
local n = 0
for i = 3, #ARGV do
  local eid = ARGV[i]
  local entry = redis.call('XRANGE', stream, eid, eid)
  redis.call('XACK', stream, 'receipts', eid)
  if #entry > 0 then
    local fields = entry[1][2]
    local rid = nil
    for j = 1, #fields, 2 do if fields[j] == 'r' then rid = fields[j + 1] end end
    redis.call('XDEL', stream, eid)
    if rid then
      local rk = ARGV[1] .. 'r:' .. rid
      local v = redis.call('HMGET', rk, 's', 'd')
      if v[1] == eid then
        redis.call('HSET', rk, 's', redis.call('XADD', stream, '*', 'r', rid, 'd', v[2]))
        n = n + 1
      end
    end
  end
end
return n
"""

# ARGV: prefix, system_id, limit -> current records of the account's waiting receipts
_PENDING_RECEIPTS = """
local entries = redis.call('XRANGE', ARGV[1] .. 'rq:' .. ARGV[2], '-', '+', 'COUNT', ARGV[3])
local out = {}
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for j = 1, #fields, 2 do
    if fields[j] == 'r' then
      local d = redis.call('HGET', ARGV[1] .. 'r:' .. fields[j + 1], 'd')
      if d then out[#out + 1] = d end
    end
  end
end
return out
"""

# ARGV: prefix, message or part id
_GET_MESSAGE = """
local r = redis.call('HGET', ARGV[1] .. 'm:' .. ARGV[2], 'r')
if r then return r end
local id = redis.call('HGET', ARGV[1] .. 'parts', ARGV[2])
if not id then return false end
return redis.call('HGET', ARGV[1] .. 'm:' .. id, 'r')
"""

# ARGV: prefix, provider, provider id
_FIND_BY_PROVIDER_ID = """
local id = redis.call('HGET', ARGV[1] .. 'pid:' .. ARGV[2], ARGV[3])
if not id then return false end
return redis.call('HGET', ARGV[1] .. 'm:' .. id, 'r')
"""

# ARGV: prefix, after id, limit, index keys... -> records, by id
_MESSAGES_IN = """
local ids = {}
for i = 4, #ARGV do
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', ARGV[1] .. ARGV[i], '(' .. ARGV[2], '+inf', 'LIMIT', 0, ARGV[3])) do
    ids[#ids + 1] = tonumber(id)
  end
end
table.sort(ids)
local out = {}
for i = 1, math.min(#ids, tonumber(ARGV[3])) do
  local r = redis.call('HGET', ARGV[1] .. 'm:' .. string.format('%d', ids[i]), 'r')
  if r then out[#out + 1] = r end
end
return out
"""

# ARGV: prefix, set key, index, submitted_at, record, data, total
_ADD_SEGMENT = """
local k = ARGV[1] .. 'seg:' .. ARGV[2]
redis.call('HSET', k, 'r' .. ARGV[3], ARGV[5], 'd' .. ARGV[3], ARGV[6])
redis.call('ZADD', ARGV[1] .. 'segs', 'LT', ARGV[4], ARGV[2])
if redis.call('HLEN', k) < 2 * tonumber(ARGV[7]) then return false end
local all = redis.call('HGETALL', k)
redis.call('DEL', k)
redis.call('ZREM', ARGV[1] .. 'segs', ARGV[2])
return all
"""

# ARGV: prefix, cutoff -> the fields of every set that began before the cutoff, removed
_TAKE_EXPIRED_SEGMENTS = """
local out = {}
for _, sk in ipairs(redis.call('ZRANGEBYSCORE', ARGV[1] .. 'segs', '-inf', '(' .. ARGV[2], 'LIMIT', 0, 1000)) do
  local k = ARGV[1] .. 'seg:' .. sk
  out[#out + 1] = redis.call('HGETALL', k)
  redis.call('DEL', k)
  redis.call('ZREM', ARGV[1] .. 'segs', sk)
end
return out
"""

# The outbox of a gone instance becomes `me`'s. ARGV: prefix, gone, me -> ids
_CLAIM_OUTBOX = """
if redis.call('EXISTS', ARGV[1] .. 'hb:' .. ARGV[2]) == 1 then return {} end
local ids = redis.call('ZRANGE', ARGV[1] .. 'own:' .. ARGV[2], 0, -1)
for _, id in ipairs(ids) do
  local mk = ARGV[1] .. 'm:' .. id
  if redis.call('EXISTS', mk) == 1 then
    redis.call('ZADD', ARGV[1] .. 'own:' .. ARGV[3], id, id)
    redis.call('HSET', mk, 'o', ARGV[3])
  end
end
redis.call('DEL', ARGV[1] .. 'own:' .. ARGV[2])
return ids
"""

_SERVER_MS = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

# One more bound session unless max_binds are bound. ARGV: key, member, max, ttl ms
_BIND = (
    _SERVER_MS
    + """
redis.call('ZREMRANGEBYSCORE', ARGV[1], '-inf', now)
if not redis.call('ZSCORE', ARGV[1], ARGV[2]) and redis.call('ZCARD', ARGV[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', ARGV[1], now + tonumber(ARGV[4]), ARGV[2])
return 1
"""
)

# Keep this instance's bound sessions counted. ARGV: ttl ms, (key, member)...
_REFRESH_BINDS = (
    _SERVER_MS
    + """
for i = 2, #ARGV, 2 do redis.call('ZADD', ARGV[i], now + tonumber(ARGV[1]), ARGV[i + 1]) end
return 1
"""
)

# Tokens from the account's cluster-wide bucket. ARGV: key, rate, burst, want -> granted
_TAKE_TOKENS = """
local rate, burst, want = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', ARGV[1], 't', 'ts')
local tokens = tonumber(v[1]) or burst
local ts = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local grant = math.min(want, math.floor(tokens))
redis.call('HSET', ARGV[1], 't', tostring(tokens - grant), 'ts', string.format('%.6f', now))
redis.call('EXPIRE', ARGV[1], math.ceil(burst / rate) + 60)
return grant
"""

# ARGV: key, me, ttl ms -> 0 held by another, 1 held by me (renewed), 2 gained now
_LEASE = """
local v = redis.call('GET', ARGV[1])
if v == ARGV[2] then
  redis.call('PEXPIRE', ARGV[1], ARGV[3])
  return 1
end
if not v then
  redis.call('SET', ARGV[1], ARGV[2], 'PX', ARGV[3])
  return 2
end
return 0
"""

# ARGV: key, me
_RELEASE = """
if redis.call('GET', ARGV[1]) == ARGV[2] then return redis.call('DEL', ARGV[1]) end
return 0
"""


# reserve_ids: a block of ARGV[2] ids in [1, max] from the counter, wrapping, past any
# id a stored message or part holds (m:<id>, the parts hash). ARGV: prefix, count,
# seed, max, probes. One block in a few thousand commands, once per `count` submits.
_RESERVE_IDS = """
local P, count, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local first = tonumber(redis.call('GET', P .. 'next_id') or '0')
if first == nil or first < 1 or first > max + 1 then first = tonumber(ARGV[3]) end
for _ = 1, tonumber(ARGV[5]) do
  if first + count - 1 > max then first = 1 end
  local taken = 0
  for id = first, first + count - 1 do
    if redis.call('EXISTS', P .. 'm:' .. id) == 1 or redis.call('HEXISTS', P .. 'parts', id) == 1 then
      taken = id
    end
  end
  if taken == 0 then
    redis.call('SET', P .. 'next_id', string.format('%d', first + count))
    return first
  end
  first = taken + 1
end
return redis.error_reply('no free message ids: the store holds too many messages')
"""


def _eval(script: str, *args: Any) -> tuple[Any, ...]:
    return ("EVAL", script, 0, *args)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- the ordered command queue ----------------------------------------------------------


class _Op:
    """One store call: its commands, how to read their replies, and its future."""

    __slots__ = ("commands", "future", "parse", "write")

    def __init__(
        self,
        commands: list[tuple[Any, ...]],
        parse: Callable[[list[Any]], Any] | None,
        future: asyncio.Future[Any],
        write: bool,
    ) -> None:
        self.commands = commands
        self.parse = parse
        self.future = future
        self.write = write


class RedisStore(Store):
    def __init__(
        self,
        url: str,
        prefix: str = "smpp-bridge",
        timeout: float = 5.0,
        instance_id: str | None = None,
        retention: float = 7 * 86400,
    ) -> None:
        super().__init__()
        self.url = url
        self.retention = retention
        self.prefix = prefix
        self.p = f"{prefix}:"
        self.timeout = timeout
        self.instance_id = instance_id or new_instance_id()
        self.client: Redis | None = None
        self.healthy = False
        self.batches = 0  # MULTI/EXEC round trips (for the benchmark notes)
        self._ops: deque[_Op] = deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._log = get_logger("store")
        self._last_error_log = 0.0
        self._probe: asyncio.Task[bool] | None = None
        self._undeleted: list[str] = []  # receipts acknowledged while Redis was away

    def key(self, *parts: Any) -> str:
        return self.p + "".join(str(part) for part in parts)

    # -- connection and the writer task -------------------------------------------------

    async def open(self) -> None:
        self.client = Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=min(self.timeout, 2.0),
            # One retry: a pooled connection broken by a Redis restart is replaced at
            # once; a Redis that is away fails fast instead of stalling submits.
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
            protocol=2,  # the reply shapes this module reads, whatever redis-py's default
        )
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            await self.client.aclose()
            self.client = None
            raise StoreUnavailable(f"cannot reach Redis at {_safe_url(self.url)}: {exc}") from exc
        self.healthy = True
        self._writer = asyncio.ensure_future(self._write_loop())
        migrated = await self._submit([_eval(_MIGRATE_DUE, self.p, repr(UPGRADE_DUE))], _first)
        if migrated:
            self._log.info("store_migrated", messages_given_a_due_time=int(migrated))

    async def close(self) -> None:
        if self._writer is None:
            return
        self._closing = True
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def _submit(
        self, commands: list[tuple[Any, ...]], parse: Callable[[list[Any]], Any] | None = None, write: bool = True
    ) -> asyncio.Future[Any]:
        if self._writer is None or self._closing:
            raise StoreUnavailable("store is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(self._log_failure if write else _retrieve)
        self._ops.append(_Op(commands, parse, future, write))
        self._wake.set()
        return future

    def _log_failure(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is None or isinstance(error, OwnershipLost):
            return
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL:
            self._last_error_log = now
            self._log.error("store_write_failed", error=str(error))

    async def _write_loop(self) -> None:
        while True:
            if not self._ops:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._ops.popleft() for _ in range(min(len(self._ops), _MAX_OPS))]
            try:
                await self._run(batch)
            except Exception as exc:  # never let the writer die: the bridge would hang
                self._log.exception("store_writer_failed", operations=len(batch))  # a bug, not Redis away
                _fail(batch, StoreUnavailable(f"store writer: {exc}"))

    async def _run(self, batch: list[_Op]) -> None:
        assert self.client is not None
        pipe = self.client.pipeline(transaction=True)
        for op in batch:
            for command in op.commands:
                pipe.execute_command(*command)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except ExecAbortError:
            # A command was refused as it was queued: the transaction did nothing.
            # Run each call on its own so one bad call does not fail the others.
            if len(batch) > 1:
                for op in batch:
                    await self._run([op])
            else:
                _fail(batch, StoreUnavailable("Redis refused the command"))
            return
        except (RedisError, OSError) as exc:
            self._unhealthy(exc)
            _fail(batch, StoreUnavailable(f"Redis unavailable: {exc}"))
            return
        finally:
            await pipe.reset()
        if not self.healthy:
            self._log.info("store_recovered")
        self.healthy = True
        self.batches += 1
        if self._undeleted:
            undeleted, self._undeleted = self._undeleted, []
            for receipt_id in undeleted:
                self.delete_receipt(receipt_id)
        at = 0
        for op in batch:
            own = replies[at : at + len(op.commands)]
            at += len(op.commands)
            if op.future.done():
                continue
            error = next((r for r in own if isinstance(r, Exception)), None)
            if error is not None:
                op.future.set_exception(StoreUnavailable(f"Redis: {error}"))
                continue
            try:
                op.future.set_result(op.parse(own) if op.parse is not None else None)
            except Exception as exc:
                op.future.set_exception(exc)

    def _unhealthy(self, exc: BaseException) -> None:
        if self.healthy:
            self._log.error("store_unavailable", error=str(exc))
        self.healthy = False

    async def probe(self) -> bool:
        """Is Redis back? One PING through the queue, shared by concurrent callers."""
        if self._probe is None:
            self._probe = asyncio.ensure_future(self._ping())
        try:
            return await asyncio.shield(self._probe)
        finally:
            if self._probe is not None and self._probe.done():
                self._probe = None

    async def _ping(self) -> bool:
        try:
            await asyncio.wait_for(self._submit([("PING",)], write=False), self.timeout)
        except _AWAY:
            return False
        except Exception:
            self._log.exception("store_probe_failed")
            return False
        return True

    # -- ids ------------------------------------------------------------------------------

    async def reserve_ids(self, count: int) -> int:
        # A fresh Redis (or a counter from before ids were bounded) starts from the clock.
        first: int = await self._submit(
            [_eval(_RESERVE_IDS, self.p, count, id_seed(time.time()), MAX_MESSAGE_ID, MAX_ID_PROBES)],
            lambda r: int(r[0]),
        )
        return first

    # -- messages -------------------------------------------------------------------------

    def _save(self, message: Message, mode: str, receipts: Sequence[Receipt] = ()) -> tuple[Any, ...]:
        m = message
        provider = m.provider or ""
        args: list[Any] = [
            self.p,
            self.instance_id,
            mode,
            m.id,
            dump_message(m),
            int(m.lifecycle),
            provider,
            m.route[0] if m.route else "",
            repr(m.done_at) if m.done_at is not None else "",
            repr(m.due_at) if m.due_at is not None and m.lifecycle is Lifecycle.ACCEPTED else "",
            m.polls,
        ]
        provider_ids = m.provider_ids if provider else []
        args.append(len(provider_ids))
        args.extend(provider_ids)
        parts = [p.message_id for p in m.parts if p.message_id != m.id] if mode == "i" else []
        args.append(len(parts))
        args.extend(parts)
        args.append(len(receipts))
        for receipt in receipts:
            args.extend((receipt.id, receipt.system_id, dump_receipt(receipt)))
        return _eval(_SAVE, *args)

    def insert_messages(self, messages: Sequence[Message]) -> Awaitable[None]:
        commands = [self._save(m, "i") for m in messages]
        return self._submit(self._journaled(commands, [m.id for m in messages], messages), _check_owned)

    def update_messages(self, messages: Sequence[Message], receipts: Sequence[Receipt] = ()) -> Awaitable[None]:
        # Each message's receipts go with it: they land only if its new state does.
        owner: dict[tuple[str, int], int] = {}
        for index, m in enumerate(messages):
            for part in m.parts:
                owner[(m.system_id, part.message_id)] = index
        grouped: list[list[Receipt]] = [[] for _ in messages]
        loose: list[Receipt] = []
        for receipt in receipts:
            at = owner.get((receipt.system_id, receipt.message_id))
            (grouped[at] if at is not None else loose).append(receipt)
        commands = [self._save(m, "u", grouped[i]) for i, m in enumerate(messages)]
        if loose:
            commands.append(self._add_receipts(loose))
        return self._submit(self._journaled(commands, [m.id for m in messages]), _check_owned)

    async def get_message(self, message_id: int) -> Message | None:
        record = await self._submit([_eval(_GET_MESSAGE, self.p, message_id)], _first, write=False)
        return load_message(record) if record is not None else None

    async def find_by_provider_id(self, provider: str, provider_id: str) -> Message | None:
        record = await self._submit([_eval(_FIND_BY_PROVIDER_ID, self.p, provider, provider_id)], _first, write=False)
        return load_message(record) if record is not None else None

    async def messages_in(
        self, lifecycles: Sequence[int], provider: str | None = None, limit: int = 1000, after_id: int = 0
    ) -> list[Message]:
        wanted = [int(lc) for lc in lifecycles if int(lc) != Lifecycle.FINAL]
        if not wanted:
            return []
        if provider is not None and wanted == [Lifecycle.ACCEPTED]:
            indexes, check = [f"lc:2:{provider}"], None
        else:
            indexes, check = [f"lc:{lc}" for lc in wanted], provider
        out: list[Message] = []
        while len(out) < limit:
            records = await self._submit([_eval(_MESSAGES_IN, self.p, after_id, limit, *indexes)], _first, write=False)
            batch = [load_message(r) for r in records or []]
            if not batch:
                break
            after_id = batch[-1].id
            out.extend(m for m in batch if check is None or m.provider == check)
            if check is None:
                break
        return out[:limit]

    async def due_messages(self, provider: str, now: float, limit: int = 500) -> list[Message]:
        reply = await self._submit([_eval(_DUE_MESSAGES, self.p, provider, repr(now), limit)], _first, write=False)
        out = []
        for record, due_at, polls in zip(reply[::3], reply[1::3], reply[2::3], strict=True):
            message = load_message(record)
            message.due_at, message.polls = float(due_at), int(polls)
            out.append(message)
        return out

    async def next_due(self, provider: str) -> float | None:
        first = await self._submit([("ZRANGE", self.key("due:", provider), 0, 0, "WITHSCORES")], _first, write=False)
        return float(first[1]) if first else None

    def reschedule(self, messages: Sequence[Message]) -> Awaitable[None]:
        args: list[Any] = [self.p]
        for m in messages:
            args.extend((m.id, m.provider or "", repr(m.due_at) if m.due_at is not None else "", m.polls))
        return self._submit([_eval(_RESCHEDULE, *args)] if messages else [])

    async def count_outbox(self) -> dict[str, int]:
        providers = await self._submit([("SMEMBERS", self.key("obp"))], _first, write=False)
        names = sorted(_text(p) for p in providers or ())
        if not names:
            return {}
        counts = await self._submit([("ZCARD", self.key("ob:", name)) for name in names], write=False, parse=list)
        return {name: int(n) for name, n in zip(names, counts, strict=True) if int(n)}

    async def purge(self, finished_before: float, limit: int = PURGE_BATCH) -> int:
        # One script per batch: one round trip, a few ms of Redis's time, no record decoded.
        deleted = await self._submit([_eval(_PURGE, self.p, repr(finished_before), limit)], _first)
        return int(deleted)

    # -- segments -------------------------------------------------------------------------

    async def add_segment(self, segment: PendingSegment) -> list[PendingSegment] | None:
        command = _eval(
            _ADD_SEGMENT,
            self.p,
            segment.set_key,
            segment.index,
            repr(segment.submitted_at),
            dump_segment(segment),
            segment.data,
            segment.total,
        )
        fields = await self._submit([command], _first)
        return _segments(fields) if fields else None

    async def take_expired_segments(self, created_before: float) -> list[PendingSegment]:
        sets = await self._submit([_eval(_TAKE_EXPIRED_SEGMENTS, self.p, repr(created_before))], _first)
        out: list[PendingSegment] = []
        for fields in sets or ():
            out.extend(_segments(fields))
        return out

    # -- receipts -------------------------------------------------------------------------

    def _add_receipts(self, receipts: Sequence[Receipt]) -> tuple[Any, ...]:
        args: list[Any] = [self.p]
        for receipt in receipts:
            args.extend((receipt.id, receipt.system_id, dump_receipt(receipt)))
        return _eval(_ADD_RECEIPTS, *args)

    def add_receipts(self, receipts: Sequence[Receipt]) -> Awaitable[None]:
        if not receipts:
            return self._submit([])
        owners = sorted({receipt_owner(r.id, r.message_id) for r in receipts})
        return self._submit(self._journaled([self._add_receipts(receipts)], owners))

    def update_receipt(self, receipt: Receipt) -> Awaitable[None]:
        command = _eval(_UPDATE_RECEIPT, self.p, receipt.id, dump_receipt(receipt))
        return self._submit(self._journaled([command], [receipt_owner(receipt.id, receipt.message_id)]))

    def delete_receipt(self, receipt_id: str) -> Awaitable[None]:
        """An acknowledged receipt must not stay in its stream (it would be sent again
        one day): a delete that fails is tried again once Redis answers."""
        command = _eval(_DELETE_RECEIPT, self.p, receipt_id)
        future = self._submit(self._journaled([command], [receipt_owner(receipt_id)]))

        def done(f: asyncio.Future[Any]) -> None:
            if not f.cancelled() and f.exception() is not None and not self.healthy and not self._closing:
                self._undeleted.append(receipt_id)  # Redis was away (not a refused command)

        future.add_done_callback(done)
        return future

    def give_back_receipts(self, receipt_ids: Sequence[str]) -> Awaitable[None]:
        """Receipts this instance read go back to the end of their account's stream."""
        return self._submit([_eval(_GIVE_BACK, self.p, *receipt_ids)])

    async def pending_receipts(self, system_id: str | None = None, limit: int = 10000) -> list[Receipt]:
        if system_id is None:
            names = await self._submit([("SMEMBERS", self.key("rqa"))], _first, write=False)
            accounts = sorted(_text(n) for n in names or ())
        else:
            accounts = [system_id]
        out: list[Receipt] = []
        for account in accounts:
            if len(out) >= limit:
                break
            records = await self._submit(
                [_eval(_PENDING_RECEIPTS, self.p, account, limit - len(out))], _first, write=False
            )
            out.extend(load_receipt(r) for r in records or ())
        return out

    # -- history and the operator's queries -----------------------------------------------

    def _journaled(
        self, commands: list[tuple[Any, ...]], owners: Sequence[int], inserted: Sequence[Message] = ()
    ) -> list[tuple[Any, ...]]:
        """`commands` and, in the same MULTI, one command appending the history events
        pending for `owners` (and indexing the `inserted` messages by destination)."""
        events = self.journal.take(owners)
        if not events and not inserted:
            return commands
        args: list[Any] = [self.p, max(1, int(self.retention * 1000)), len(inserted)]
        for m in inserted:
            args.extend((m.number.digits, repr(m.created_at), m.id))
        for event in events:
            args.extend((event.message_id, dump_event(event)))
        return [*commands, _eval(_JOURNAL, *args)]

    def flush_history(self, message_ids: Sequence[int]) -> Awaitable[None]:
        return self._submit(self._journaled([], message_ids))

    async def history(self, message_id: int) -> list[HistoryEvent]:
        records = await self._submit([("LRANGE", self.key("h:", message_id), 0, -1)], _first, write=False)
        return [load_event(r) for r in records or ()]

    async def find_by_destination(self, destination: str, since: float, until: float, limit: int) -> list[Message]:
        command = _eval(_FIND_BY_DESTINATION, self.p, destination, repr(since), repr(until), limit)
        records = await self._submit([command], _first, write=False)
        return [load_message(r) for r in records or ()]

    async def purge_history(self, before: float) -> int:
        return 0  # each message's events expire by themselves (h:<id>, `retention` after the last)

    async def incomplete_sets(self, limit: int = 1000) -> list[list[PendingSegment]]:
        sets = await self._submit([_eval(_INCOMPLETE_SETS, self.p, limit)], _first, write=False)
        return [_segments(fields) for fields in sets or () if fields]


def _first(replies: list[Any]) -> Any:
    return replies[0]


def _check_owned(replies: list[Any]) -> None:
    if any(r == -1 for r in replies):
        raise OwnershipLost("another instance took this outbox message over")


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # read failures are the caller's; mark them retrieved


def _fail(batch: list[_Op], error: Exception) -> None:
    for op in batch:
        if not op.future.done():
            op.future.set_exception(error)


def _segments(fields: list[Any]) -> list[PendingSegment]:
    """HGETALL of a set (r<idx> record, d<idx> data) -> its segments by index."""
    records: dict[str, Any] = {}
    data: dict[str, bytes] = {}
    for name, value in zip(fields[::2], fields[1::2], strict=True):
        field = _text(name)
        (records if field[0] == "r" else data)[field[1:]] = value
    segments = [load_segment(record, data.get(index, b"")) for index, record in records.items()]
    return sorted(segments, key=lambda s: s.index)


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


# -- the cluster ------------------------------------------------------------------------


@dataclass(slots=True)
class _Share:
    """This instance's share of an account's cluster-wide throughput bucket."""

    rate: float
    block: int
    tokens: float = 0.0
    expires: float = 0.0
    empty_until: float = 0.0
    refill: asyncio.Task[None] | None = None
    waiting: int = 0  # submits waiting for a refill: it asks for enough for all of them


SHARE_SECONDS = 0.05  # tokens taken from Redis at a time: this many seconds of the rate
SHARE_LIFETIME = 1.0  # tokens unused this long go unused (no instance hoards them)
PROBE_INTERVAL = 0.5  # while Redis is away, a submit checks whether it is back at most this often


class RedisCluster(Cluster):
    """Heartbeat every instance_ttl/4; an instance whose heartbeat lapsed is gone:
    its outbox and the receipts it had read are taken over, its bind slots and
    leases expire on their own."""

    shared = True

    def __init__(self, store: RedisStore, ttl: float = 10.0) -> None:
        super().__init__(store.instance_id)
        self._store = store
        self.ttl = ttl
        self._log = get_logger("cluster").bind(instance=self.instance_id)
        self._binds: dict[str, str] = {}  # member -> system_id, bound here
        self._leases: dict[str, float] = {}  # name -> ttl, held here
        self._shares: dict[str, _Share] = {}
        self._task: asyncio.Task[None] | None = None
        self._on_orphans: OrphanSink | None = None
        self._orphans: list[int] = []  # taken over, not yet handed to the outbox
        self._connected_since: float | None = None
        self._last_probe = 0.0

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    async def start(self, on_orphans: OrphanSink) -> None:
        self._on_orphans = on_orphans
        await self._beat()
        self._connected_since = time.monotonic()
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        commands: list[tuple[Any, ...]] = [
            _eval(_RELEASE, self._store.key("lease:", name), self.instance_id) for name in self._leases
        ]
        commands.extend(("ZREM", self._store.key("binds:", sid), member) for member, sid in self._binds.items())
        # Still listed in `instances`, without a heartbeat: the others take over what
        # this instance leaves (its outbox, receipts it read) at their next beat.
        commands.append(("DEL", self._store.key("hb:", self.instance_id)))
        self._leases.clear()
        self._binds.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._store._submit(commands), self._store.timeout)

    # -- heartbeat and taking over ------------------------------------------------------

    async def _loop(self) -> None:
        interval = self.ttl / 4
        while True:
            await asyncio.sleep(interval)
            try:
                await self._beat()
                if self._connected_since is None:
                    self._connected_since = time.monotonic()
                # Claim only after a whole ttl of contact: after an outage every live
                # instance gets the time to beat again before it counts as gone.
                if time.monotonic() - self._connected_since >= self.ttl:
                    await self._take_over()
                if self._orphans:
                    await self._adopt()
            except Exception as exc:
                if self._connected_since is not None or not isinstance(exc, _AWAY):
                    # Redis away is said once per outage; anything else is a bug, with its traceback.
                    self._log.error("cluster_heartbeat_failed", error=str(exc), exc_info=not isinstance(exc, _AWAY))
                self._connected_since = None

    async def _beat(self) -> None:
        s = self._store
        hb = s.key("hb:", self.instance_id)
        commands: list[tuple[Any, ...]] = [
            ("SET", hb, repr(time.time()), "PX", self._ttl_ms, "GET"),
            ("SADD", s.key("instances"), self.instance_id),
        ]
        if self._binds:
            pairs = [a for member, sid in self._binds.items() for a in (s.key("binds:", sid), member)]
            commands.append(_eval(_REFRESH_BINDS, self._ttl_ms, *pairs))
        names = list(self._leases)
        for name in names:
            commands.append(_eval(_LEASE, s.key("lease:", name), self.instance_id, int(self._leases[name] * 1000)))
        replies = await asyncio.wait_for(s._submit(commands, list), s.timeout)
        if replies[0] is None and self._connected_since is not None:
            # Our heartbeat had lapsed: the others may have taken our outbox over.
            self._log.warning("cluster_heartbeat_lapsed")
        for name, state in zip(names, replies[len(commands) - len(names) :], strict=True):
            if state == 0:
                self._leases.pop(name, None)
                self._log.warning("lease_lost", lease=name)

    async def _take_over(self) -> None:
        s = self._store
        members = sorted(_text(m) for m in await s._submit([("SMEMBERS", s.key("instances"))], _first, False))
        others = [m for m in members if m != self.instance_id]
        if not others:
            return
        alive = await s._submit([("EXISTS", s.key("hb:", m)) for m in others], list, write=False)
        for gone, beating in zip(others, alive, strict=True):
            if beating:
                continue
            ids = [int(i) for i in await s._submit([_eval(_CLAIM_OUTBOX, s.p, gone, self.instance_id)], _first)]
            receipts = await self._requeue_receipts_of(gone)
            await s._submit([("SREM", s.key("instances"), gone)])
            self._log.warning("cluster_instance_gone", gone=gone, outbox=len(ids), receipts=receipts)
            self._orphans.extend(ids)

    async def _requeue_receipts_of(self, gone: str) -> int:
        """Receipts the gone instance had read (sent or queued, unacknowledged) go back
        to their stream for any receiver."""
        s = self._store
        assert s.client is not None
        accounts = sorted(_text(a) for a in await s._submit([("SMEMBERS", s.key("rqa"))], _first, False))
        moved = 0
        for account in accounts:
            stream = s.key("rq:", account)
            while True:
                try:
                    pending = await s.client.xpending_range(stream, GROUP, "-", "+", 1000, consumername=gone)
                except ResponseError:  # no such stream or group
                    break
                ids = [p["message_id"] for p in pending]
                if not ids:
                    break
                moved += int(await s._submit([_eval(_REQUEUE_ENTRIES, s.p, account, *ids)], _first))
            with contextlib.suppress(ResponseError):
                await s.client.xgroup_delconsumer(stream, GROUP, gone)
        return moved

    async def _adopt(self) -> None:
        orphans, self._orphans = self._orphans, []
        try:
            assert self._on_orphans is not None
            await self._on_orphans(orphans)
        except Exception:
            self._orphans = orphans + self._orphans  # again at the next beat
            raise

    # -- binds ----------------------------------------------------------------------------

    async def try_bind(self, system_id: str, member: str, max_binds: int) -> bool:
        s = self._store
        command = _eval(_BIND, s.key("binds:", system_id), member, max_binds, self._ttl_ms)
        granted = bool(await s._submit([command], _first))
        if granted:
            self._binds[member] = system_id
        return granted

    def unbind(self, system_id: str, member: str) -> None:
        if self._binds.pop(member, None) is None:
            return
        with contextlib.suppress(StoreUnavailable):  # if lost: it expires with the heartbeat ttl
            self._store._submit([("ZREM", self._store.key("binds:", system_id), member)])

    # -- throughput -----------------------------------------------------------------------

    async def admit(self, system_id: str, rate: float) -> bool:
        """Tokens come from the account's bucket in Redis in blocks of SHARE_SECONDS of
        the rate: one round trip per block, not per submit (see docs/redis.md)."""
        if not self._store.healthy:
            await self._check_back()
        if rate <= 0:
            return True
        now = time.monotonic()
        share = self._shares.get(system_id)
        if share is None or share.rate != rate:
            block = max(1, min(math.ceil(rate * SHARE_SECONDS), int(max(rate, 1.0))))
            share = self._shares[system_id] = _Share(rate, block)
        if now > share.expires:
            share.tokens = 0.0
        if share.tokens < 1:
            share.waiting += 1
            try:
                while share.tokens < 1:
                    if time.monotonic() < share.empty_until and share.refill is None:
                        return False  # the cluster's bucket was empty a moment ago
                    await self._refill(system_id, share)
            finally:
                share.waiting -= 1
        share.tokens -= 1
        if share.tokens < share.block / 2 and share.refill is None:
            task = share.refill = asyncio.ensure_future(self._take_tokens(system_id, share))
            task.add_done_callback(_retrieve)
        return True

    async def _check_back(self) -> None:
        now = time.monotonic()
        if now - self._last_probe >= PROBE_INTERVAL:
            self._last_probe = now
            if await self._store.probe():
                return
        raise StoreUnavailable("Redis unavailable")

    async def _refill(self, system_id: str, share: _Share) -> None:
        if share.refill is None:
            share.refill = asyncio.ensure_future(self._take_tokens(system_id, share))
        await asyncio.shield(share.refill)

    async def _take_tokens(self, system_id: str, share: _Share) -> None:
        try:
            s = self._store
            burst = max(share.rate, 1.0)
            want = min(int(burst), max(share.block, share.waiting))
            command = _eval(_TAKE_TOKENS, s.key("tp:", system_id), repr(share.rate), repr(burst), want)
            granted = int(await s._submit([command], _first))
            now = time.monotonic()
            if now > share.expires:
                share.tokens = 0.0
            share.tokens += granted
            share.expires = now + SHARE_LIFETIME
            if not granted:
                share.empty_until = now + 1.0 / share.rate
        finally:
            share.refill = None

    # -- leases ---------------------------------------------------------------------------

    async def lease(self, name: str, ttl: float) -> Lease:
        s = self._store
        try:
            command = _eval(_LEASE, s.key("lease:", name), self.instance_id, max(1, int(ttl * 1000)))
            state = int(await s._submit([command], _first))
        except Exception as exc:
            # Redis away: whoever held the lease goes on (its work needs no Redis).
            if not isinstance(exc, _AWAY):
                self._log.exception("lease_failed", lease=name)
            return Lease.HELD if name in self._leases else Lease.NO
        if state == 0:
            self._leases.pop(name, None)
            return Lease.NO
        self._leases[name] = ttl
        return Lease.GAINED if state == 2 else Lease.HELD

    async def release(self, name: str) -> None:
        self._leases.pop(name, None)  # no longer renewed: it lapses if the release fails
        with contextlib.suppress(Exception):
            command = _eval(_RELEASE, self._store.key("lease:", name), self.instance_id)
            await asyncio.wait_for(self._store._submit([command]), self._store.timeout)

    def holds(self, name: str) -> bool:
        return name in self._leases


def _stream_entries(reply: Any) -> list[tuple[Any, list[tuple[Any, dict[bytes, Any]]]]]:
    """XREAD / XREADGROUP replies (RESP2) as [(stream, [(id, fields)])]."""
    return [(name, entries) for name, entries in reply or ()]


# -- receipts across instances ----------------------------------------------------------


class RedisReceiptQueue(ReceiptQueue):
    """One Redis stream per account, one consumer group. An instance with receivers
    of an account bound reads as many entries as their windows have room for
    (XREADGROUP, blocking); the store deletes an entry on ESME_ROK. Receipts held by
    an instance whose receivers went away go back to the end of the stream; those
    read by an instance that died are put back by the others (RedisCluster)."""

    def __init__(self, store: RedisStore, block: float = 1.0, count_interval: float = 1.0) -> None:
        self._store = store
        self._block_ms = max(1, int(block * 1000))
        self._count_interval = count_interval
        self._consumers: dict[str, asyncio.Task[None]] = {}
        self._counts: dict[str, int] = {}
        self._counter: asyncio.Task[None] | None = None
        self._closed = False
        self._log = get_logger("receipts")
        self._last_error_log = 0.0
        self._unreturned: list[str] = []  # given back while Redis was away: tried again

    def added(self, receipts: Sequence[Receipt]) -> list[Receipt]:
        return []  # they are in their stream: whoever has a receiver reads them

    async def load(self) -> list[Receipt]:
        self._counter = asyncio.ensure_future(self._count_forever())
        return []

    def want(self, system_id: str) -> None:
        if self._closed or system_id in self._consumers:
            return
        self._consumers[system_id] = asyncio.ensure_future(self._consume(system_id))

    def give_back(self, system_id: str, receipts: Sequence[Receipt]) -> bool:
        self._return([r.id for r in receipts])
        return True

    def _return(self, receipt_ids: list[str]) -> None:
        """Back to their streams; while Redis is away, again every count_interval (until
        then they stay read by this instance, and taken over if it dies)."""
        try:
            future = self._store.give_back_receipts(receipt_ids)
        except StoreUnavailable:
            return  # closing: the others take them over once our heartbeat is gone

        def done(f: Any) -> None:
            if not f.cancelled() and f.exception() is not None and not self._closed:
                self._unreturned.extend(receipt_ids)

        future.add_done_callback(done)  # type: ignore[attr-defined]

    def waiting(self, system_id: str, local: int) -> int:
        return max(self._counts.get(system_id, 0), local)

    def accounts(self) -> list[str]:
        return list(self._counts)

    async def close(self) -> None:
        self._closed = True
        tasks = [*self._consumers.values(), *([self._counter] if self._counter else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._consumers.clear()

    async def _consume(self, system_id: str) -> None:
        s = self._store
        stream = s.key("rq:", system_id)
        failures = 0
        try:
            while not self._closed:
                room = self._room(system_id)
                if room <= 0 or s.client is None:
                    return
                try:
                    reply = await s.client.xreadgroup(
                        GROUP, s.instance_id, {stream: ">"}, count=min(room, 500), block=self._block_ms
                    )
                    failures = 0
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    with contextlib.suppress(ResponseError):
                        await s.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
                    await s.client.sadd(s.key("rqa"), system_id)  # where the takeover looks
                    continue
                except (RedisError, OSError) as exc:
                    self._error(exc)
                    failures += 1
                    await asyncio.sleep(min(2.0, 0.05 * 2**failures))
                    continue
                receipts = [
                    load_receipt(fields[b"d"])
                    for _name, entries in _stream_entries(reply)
                    for _id, fields in entries
                    if fields and b"d" in fields
                ]
                if receipts:
                    self._take(receipts)
        finally:
            if self._consumers.get(system_id) is asyncio.current_task():
                del self._consumers[system_id]

    async def _count_forever(self) -> None:
        """Cluster-wide receipts waiting per account (for max_queued_receipts and the gauge)."""
        s = self._store
        while not self._closed:
            try:
                assert s.client is not None
                accounts = sorted(_text(a) for a in await s.client.smembers(s.key("rqa")))
                if accounts:
                    pipe = s.client.pipeline(transaction=False)
                    for account in accounts:
                        pipe.xlen(s.key("rq:", account))
                    lengths = await pipe.execute()
                    self._counts = {a: int(n) for a, n in zip(accounts, lengths, strict=True)}
            except (RedisError, OSError) as exc:
                self._error(exc)
            if self._unreturned and s.healthy:
                unreturned, self._unreturned = self._unreturned, []
                self._return(unreturned)
            await asyncio.sleep(self._count_interval)

    def _error(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL:
            self._last_error_log = now
            self._log.warning("receipt_queue_unavailable", error=str(exc))
