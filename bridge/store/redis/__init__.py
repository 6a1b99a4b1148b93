"""Shared store on Redis (redis-py asyncio), for several bridge instances on one Redis.

  connection.py  RedisConnection: the client, and the ordered command queue in front of
                 it (one MULTI/EXEC per batch of calls; scripts by SHA, loaded on every
                 connection); health and reconnection.
  scripts.py     the Lua scripts, their lifecycle numbers filled from the Python enums.
  store.py       RedisStore: the Store (messages, segments, receipts, history, ids).
  cluster.py     RedisCluster: heartbeats, bind counts, throughput shares, leases,
                 taking over a gone instance's outbox.
  receipts.py    RedisReceiptQueue: the per-account receipt streams and their group.
The store owns the connection; the cluster and the receipt queue send their own
commands through it (`RedisStore.connection`).

Redis going away never crashes the bridge: calls fail with StoreUnavailable and
redis-py reconnects when Redis is back. Durability is Redis's: run it with
`appendonly yes` (`appendfsync always` for "acknowledged means on disk").
Standalone Redis (or Sentinel): scripts name keys they compute, so not Redis Cluster.

Keys, all under `<prefix>:` (<n> a Lifecycle value)
  next_id                    counter behind reserve_ids (blocks in [1, 2**32), wrapping)
  m:<id>                     hash: r = record, l = lifecycle, o = owning instance (outbox)
  lc:<n>, lc:<ACCEPTED>:<prov>  unfinished message ids by lifecycle (score = id)
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

from bridge.store.redis.cluster import RedisCluster
from bridge.store.redis.receipts import RedisReceiptQueue
from bridge.store.redis.store import RedisStore

__all__ = ["RedisCluster", "RedisReceiptQueue", "RedisStore"]
