"""The Lua scripts of the Redis store, the cluster and the receipt streams.

What must be atomic beyond one command is a script: a message's new state with its
indexes and receipts, a concatenated set completing, an outbox taken over, a lease.
Each is a `Script` here, named after what it does. Its text is a template: the
lifecycle numbers stored in `m:<id>` (field `l`) and in the index keys `lc:<n>` are
written `$QUEUED`, `$SENDING`, `$ACCEPTED`, `$FINAL` and filled from
`bridge.core.message.Lifecycle` at import, the receipt streams' consumer group is
`$GROUP`; a script holds no number of its own where an enum value belongs
(tests/redis/test_scripts.py checks it).

A call names its script by SHA1 (EVALSHA, 40 bytes) rather than sending its source
(EVAL, 0.3 to 2.5 KB) with every write. `RedisConnection` loads all of them on every
new connection and again after a NOSCRIPT; redis-py's own `Script` objects are not
used, see connection.py for why.

Keys are computed from the prefix (ARGV[1] or a key argument), so the scripts need
standalone Redis (or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from string import Template
from typing import Any

from bridge.core.message import Lifecycle

GROUP = "receipts"  # the consumer group of every account's receipt stream

# What the templates' $NAMEs stand for.
VALUES: dict[str, str] = {**{lc.name: str(int(lc)) for lc in Lifecycle}, "GROUP": GROUP}


def render(template: str, values: Mapping[str, str] = VALUES) -> str:
    """The script text: every $NAME replaced (a name without a value is an error)."""
    return Template(template).substitute(values)


class Script:
    """One Lua script: its source, rendered once, and the SHA1 calls name it by."""

    __slots__ = ("name", "sha", "source", "template")

    def __init__(self, name: str, template: str, values: Mapping[str, str] = VALUES) -> None:
        self.name = name
        self.template = template
        self.source = render(template, values)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    def command(self, *args: Any) -> tuple[Any, ...]:
        """The EVALSHA command running this script with ARGV = args (no KEYS)."""
        return ("EVALSHA", self.sha, 0, *args)

    def __repr__(self) -> str:
        return f"Script({self.name!r}, {self.sha[:8]})"


SCRIPTS: list[Script] = []  # every script, loaded together on each connection


def _script(name: str, template: str) -> Script:
    script = Script(name, template)
    SCRIPTS.append(script)
    return script


# -- pieces shared by several scripts ---------------------------------------------------

_ADD_RECEIPT = """
local function add_receipt(P, rid, sid, rec)
  local rk = P .. 'r:' .. rid
  if redis.call('EXISTS', rk) == 1 then return 0 end
  local stream = P .. 'rq:' .. sid
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, '$GROUP', '0', 'MKSTREAM')
  end
  redis.call('SADD', P .. 'rqa', sid)  -- also when a reader created the stream first
  local eid = redis.call('XADD', stream, '*', 'r', rid, 'd', rec)
  redis.call('HSET', rk, 'd', rec, 's', eid, 'a', sid)
  return 1
end
"""

_SERVER_MS = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

# -- messages ---------------------------------------------------------------------------

# A message written with its indexes, provider ids, part ids and receipts. A final
# message never changes again (a late or replayed report on another instance changes
# nothing, and adds no receipt); an outbox write (QUEUED/SENDING) by an instance
# that no longer owns the message is refused (-1), and so is finishing a message
# another instance is sending (an operator's give-up through another instance).
# An ACCEPTED message's due time is written when it becomes ACCEPTED (later changes
# are RESCHEDULE's) and removed when it leaves ACCEPTED.
# ARGV: prefix, me, mode (i|u), id, record, lifecycle, provider, first, done_at,
#       due ('' = none), polls, n, provider ids..., n, part ids..., n, (receipt id, system_id, record)...
SAVE = _script(
    "save",
    _ADD_RECEIPT
    + """
local function in_outbox(lc) return lc == $QUEUED or lc == $SENDING end
local P, me, mode, id, rec = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local l, prov, first, done, due = tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local key = P .. 'm:' .. id
local old = redis.call('HMGET', key, 'l', 'o')
local oldl = tonumber(old[1])
local owner = old[2] or ''
if oldl == $FINAL then
  if in_outbox(l) then return -1 end  -- finished meanwhile (an operator gave up on it): no more attempts
  return 0
end
if mode == 'u' and in_outbox(l) and (not in_outbox(oldl) or owner ~= me) then return -1 end
-- another instance's attempt is in flight: an operator's give-up waits for its answer
if l == $FINAL and oldl == $SENDING and owner ~= me then return -1 end
local newowner = ''
if in_outbox(l) then newowner = me end
redis.call('HSET', key, 'r', rec, 'l', l, 'o', newowner)
if oldl ~= nil and oldl ~= l then
  redis.call('ZREM', P .. 'lc:' .. oldl, id)
  if oldl == $ACCEPTED and prov ~= '' then redis.call('ZREM', P .. 'lc:$ACCEPTED:' .. prov, id) end
end
if l ~= $FINAL then redis.call('ZADD', P .. 'lc:' .. l, id, id) end
if l == $ACCEPTED and oldl ~= $ACCEPTED and prov ~= '' then
  redis.call('ZADD', P .. 'lc:$ACCEPTED:' .. prov, id, id)
  if due ~= '' then
    redis.call('ZADD', P .. 'due:' .. prov, due, id)
    redis.call('HSET', key, 'd', due, 'n', ARGV[11])
  end
elseif l ~= $ACCEPTED and oldl == $ACCEPTED and prov ~= '' then
  redis.call('ZREM', P .. 'due:' .. prov, id)
  redis.call('HDEL', key, 'd', 'n')
end
if in_outbox(l) then
  redis.call('ZADD', P .. 'ob:' .. first, id, id)
  redis.call('SADD', P .. 'obp', first)
  redis.call('ZADD', P .. 'own:' .. me, id, id)
elseif in_outbox(oldl) then
  redis.call('ZREM', P .. 'ob:' .. first, id)
  if owner ~= '' then redis.call('ZREM', P .. 'own:' .. owner, id) end
end
if l == $FINAL and done ~= '' then redis.call('ZADD', P .. 'done', done, id) end
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
""",
)

# ARGV: prefix, message or part id
GET_MESSAGE = _script(
    "get_message",
    """
local r = redis.call('HGET', ARGV[1] .. 'm:' .. ARGV[2], 'r')
if r then return r end
local id = redis.call('HGET', ARGV[1] .. 'parts', ARGV[2])
if not id then return false end
return redis.call('HGET', ARGV[1] .. 'm:' .. id, 'r')
""",
)

# ARGV: prefix, provider, provider id
FIND_BY_PROVIDER_ID = _script(
    "find_by_provider_id",
    """
local id = redis.call('HGET', ARGV[1] .. 'pid:' .. ARGV[2], ARGV[3])
if not id then return false end
return redis.call('HGET', ARGV[1] .. 'm:' .. id, 'r')
""",
)

# ARGV: prefix, after id, limit, index keys... -> records, by id
MESSAGES_IN = _script(
    "messages_in",
    """
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
""",
)

# New due times of messages still ACCEPTED; a message final or gone loses its entry.
# ARGV: prefix, then (id, provider, due or '', polls)...
RESCHEDULE = _script(
    "reschedule",
    """
local P = ARGV[1]
for b = 2, #ARGV, 4 do
  local id, z = ARGV[b], P .. 'due:' .. ARGV[b + 1]
  local key = P .. 'm:' .. id
  local l = tonumber(redis.call('HGET', key, 'l'))
  if ARGV[b + 2] ~= '' and l == $ACCEPTED then
    redis.call('ZADD', z, ARGV[b + 2], id)
    redis.call('HSET', key, 'd', ARGV[b + 2], 'n', ARGV[b + 3])
  else
    redis.call('ZREM', z, id)
    redis.call('HDEL', key, 'd', 'n')
  end
end
return 1
""",
)

# ARGV: prefix, provider, now, limit -> (record, due, polls)... of the due messages
DUE_MESSAGES = _script(
    "due_messages",
    """
local P = ARGV[1]
local z = P .. 'due:' .. ARGV[2]
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))) do
  local v = redis.call('HMGET', P .. 'm:' .. id, 'r', 'd', 'n', 'l')
  local l = tonumber(v[4])
  if v[1] and l == $ACCEPTED then
    out[#out + 1] = v[1]
    out[#out + 1] = v[2] or '0'
    out[#out + 1] = v[3] or '0'
  else
    redis.call('ZREM', z, id)
  end
end
return out
""",
)

# Once per store: messages accepted before due times existed are due at once (their
# connector decides what is left to do). ARGV: prefix, UPGRADE_DUE -> how many
MIGRATE_DUE = _script(
    "migrate_due",
    """
local P = ARGV[1]
if redis.call('EXISTS', P .. 'schema:due') == 1 then return 0 end
local n = 0
for _, id in ipairs(redis.call('ZRANGE', P .. 'lc:$ACCEPTED', 0, -1)) do
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
""",
)

# Up to `limit` finished messages done before the cutoff, with their provider-id and
# part-id entries (named in the fields p, k, q that SAVE writes; a record stored before
# those fields existed is decoded instead). ARGV: prefix, cutoff, limit -> how many
PURGE = _script(
    "purge",
    """
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
""",
)

# reserve_ids: a block of ARGV[2] ids in [1, max] from the counter, wrapping, past any
# id a stored message or part holds (m:<id>, the parts hash). ARGV: prefix, count,
# seed, max, probes. One block in a few thousand commands, once per `count` submits.
RESERVE_IDS = _script(
    "reserve_ids",
    """
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
""",
)

# -- history and the operator's queries -------------------------------------------------

# The history events of one write, and the destination index of the messages it
# inserts. ARGV: prefix, ttl ms, n, (destination, created_at, id)..., (id, event)...
JOURNAL = _script(
    "journal",
    """
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
""",
)

# ARGV: prefix, destination, since, until, limit -> records, oldest first
FIND_BY_DESTINATION = _script(
    "find_by_destination",
    """
local out = {}
local ids = redis.call('ZRANGEBYSCORE', ARGV[1] .. 'to:' .. ARGV[2], ARGV[3], '(' .. ARGV[4], 'LIMIT', 0, ARGV[5])
for _, id in ipairs(ids) do
  local r = redis.call('HGET', ARGV[1] .. 'm:' .. id, 'r')
  if r then out[#out + 1] = r end
end
return out
""",
)

# -- concatenated sets ------------------------------------------------------------------

# ARGV: prefix, set key, index, submitted_at, record, data, total
ADD_SEGMENT = _script(
    "add_segment",
    """
local k = ARGV[1] .. 'seg:' .. ARGV[2]
redis.call('HSET', k, 'r' .. ARGV[3], ARGV[5], 'd' .. ARGV[3], ARGV[6])
redis.call('ZADD', ARGV[1] .. 'segs', 'LT', ARGV[4], ARGV[2])
if redis.call('HLEN', k) < 2 * tonumber(ARGV[7]) then return false end
local all = redis.call('HGETALL', k)
redis.call('DEL', k)
redis.call('ZREM', ARGV[1] .. 'segs', ARGV[2])
return all
""",
)

# ARGV: prefix, cutoff -> the fields of every set that began before the cutoff, removed
TAKE_EXPIRED_SEGMENTS = _script(
    "take_expired_segments",
    """
local out = {}
for _, sk in ipairs(redis.call('ZRANGEBYSCORE', ARGV[1] .. 'segs', '-inf', '(' .. ARGV[2], 'LIMIT', 0, 1000)) do
  local k = ARGV[1] .. 'seg:' .. sk
  out[#out + 1] = redis.call('HGETALL', k)
  redis.call('DEL', k)
  redis.call('ZREM', ARGV[1] .. 'segs', sk)
end
return out
""",
)

# ARGV: prefix, limit -> the fields of the oldest incomplete sets
INCOMPLETE_SETS = _script(
    "incomplete_sets",
    """
local out = {}
for _, sk in ipairs(redis.call('ZRANGE', ARGV[1] .. 'segs', 0, tonumber(ARGV[2]) - 1)) do
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. 'seg:' .. sk)
end
return out
""",
)

# -- receipts ---------------------------------------------------------------------------

# ARGV: prefix, then (receipt id, system_id, record)...
ADD_RECEIPTS = _script(
    "add_receipts",
    _ADD_RECEIPT
    + """
local added = 0
for b = 2, #ARGV, 3 do added = added + add_receipt(ARGV[1], ARGV[b], ARGV[b + 1], ARGV[b + 2]) end
return added
""",
)

# ARGV: prefix, receipt id, record
UPDATE_RECEIPT = _script(
    "update_receipt",
    """
local rk = ARGV[1] .. 'r:' .. ARGV[2]
if redis.call('EXISTS', rk) == 0 then return 0 end
redis.call('HSET', rk, 'd', ARGV[3])
return 1
""",
)

# ARGV: prefix, receipt id
DELETE_RECEIPT = _script(
    "delete_receipt",
    """
local rk = ARGV[1] .. 'r:' .. ARGV[2]
local v = redis.call('HMGET', rk, 's', 'a')
if v[1] then
  local stream = ARGV[1] .. 'rq:' .. v[2]
  redis.call('XACK', stream, '$GROUP', v[1])
  redis.call('XDEL', stream, v[1])
end
return redis.call('DEL', rk)
""",
)

# ARGV: prefix, system_id, limit -> current records of the account's waiting receipts
PENDING_RECEIPTS = _script(
    "pending_receipts",
    """
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
""",
)

# Receipts an instance holds go back to the end of their account's stream, for any
# instance to read. ARGV: prefix, receipt ids...
GIVE_BACK = _script(
    "give_back",
    """
local n = 0
for i = 2, #ARGV do
  local rk = ARGV[1] .. 'r:' .. ARGV[i]
  local v = redis.call('HMGET', rk, 's', 'a', 'd')
  if v[1] then
    local stream = ARGV[1] .. 'rq:' .. v[2]
    redis.call('XACK', stream, '$GROUP', v[1])
    redis.call('XDEL', stream, v[1])
    redis.call('HSET', rk, 's', redis.call('XADD', stream, '*', 'r', ARGV[i], 'd', v[3]))
    n = n + 1
  end
end
return n
""",
)

# Stream entries read by a gone instance, back to the end of the stream. An entry
# whose receipt moved on (acknowledged, or requeued by someone else) is only acked.
# ARGV: prefix, system_id, entry ids...
REQUEUE_ENTRIES = _script(
    "requeue_entries",
    """
local stream = ARGV[1] .. 'rq:' .. ARGV[2]
local n = 0
for i = 3, #ARGV do
  local eid = ARGV[i]
  local entry = redis.call('XRANGE', stream, eid, eid)
  redis.call('XACK', stream, '$GROUP', eid)
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
""",
)

# -- the cluster ------------------------------------------------------------------------

# The outbox of a gone instance becomes `me`'s. ARGV: prefix, gone, me -> ids
CLAIM_OUTBOX = _script(
    "claim_outbox",
    """
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
""",
)

# One more bound session unless max_binds are bound. ARGV: key, member, max, ttl ms
BIND = _script(
    "bind",
    _SERVER_MS
    + """
redis.call('ZREMRANGEBYSCORE', ARGV[1], '-inf', now)
if not redis.call('ZSCORE', ARGV[1], ARGV[2]) and redis.call('ZCARD', ARGV[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', ARGV[1], now + tonumber(ARGV[4]), ARGV[2])
return 1
""",
)

# Keep this instance's bound sessions counted. ARGV: ttl ms, (key, member)...
REFRESH_BINDS = _script(
    "refresh_binds",
    _SERVER_MS
    + """
for i = 2, #ARGV, 2 do redis.call('ZADD', ARGV[i], now + tonumber(ARGV[1]), ARGV[i + 1]) end
return 1
""",
)

# Tokens from the account's cluster-wide bucket. ARGV: key, rate, burst, want -> granted
TAKE_TOKENS = _script(
    "take_tokens",
    """
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
""",
)

# ARGV: key, me, ttl ms -> 0 held by another, 1 held by me (renewed), 2 gained now
LEASE = _script(
    "lease",
    """
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
""",
)

# ARGV: key, me
RELEASE = _script(
    "release",
    """
if redis.call('GET', ARGV[1]) == ARGV[2] then return redis.call('DEL', ARGV[1]) end
return 0
""",
)
