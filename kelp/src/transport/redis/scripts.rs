//! Lua scripts run inside Redis, each one atomic.

use std::sync::LazyLock;

/// Pop up to ARGV[1] messages from the bucket keys (KEYS[3..], in fetch
/// order) and, when ARGV[3] is `1`, record each in Kombu's unacked hash
/// (KEYS[1], `tag -> [payload, exchange, routing_key]`) and index (KEYS[2],
/// scored with the time ARGV[2]) in the same step. Kombu's BRPOP removes a
/// message before recording it, so a consumer killed in between loses it;
/// here the message is always either in its queue or in the unacked hash.
/// Returns a flat list: key, payload, tag, key, payload, tag...
pub(crate) static FETCH: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local max = tonumber(ARGV[1])
local record = ARGV[3] == '1'
local out = {}
local n = 0
for i = 3, #KEYS do
  while n < max do
    local raw = redis.call('RPOP', KEYS[i])
    if not raw then break end
    local tag = ''
    if record then
      local ex, rk = '', ''
      local ok, doc = pcall(cjson.decode, raw)
      local entry
      if ok and type(doc) == 'table' and type(doc.properties) == 'table' then
        local p = doc.properties
        if type(p.delivery_tag) == 'string' or type(p.delivery_tag) == 'number' then
          tag = tostring(p.delivery_tag)
        end
        if type(p.delivery_info) == 'table' then
          if type(p.delivery_info.exchange) == 'string' then ex = p.delivery_info.exchange end
          if type(p.delivery_info.routing_key) == 'string' then rk = p.delivery_info.routing_key end
        end
        entry = '[' .. raw .. ',' .. cjson.encode(ex) .. ',' .. cjson.encode(rk) .. ']'
      else
        entry = cjson.encode({raw, ex, rk})
      end
      if tag == '' then
        tag = 'kelp-' .. redis.sha1hex(raw) .. '-' .. ARGV[2] .. '-' .. n
      end
      redis.call('ZADD', KEYS[2], ARGV[2], tag)
      redis.call('HSET', KEYS[1], tag, entry)
    end
    out[#out + 1] = KEYS[i]
    out[#out + 1] = raw
    out[#out + 1] = tag
    n = n + 1
  end
  if n >= max then break end
end
return out
"#,
    )
});

/// Put an unacked message back: only if its record (ARGV[1] in the hash
/// KEYS[1]) still exists, remove the record and the index entry (KEYS[2])
/// and push ARGV[2] onto every list KEYS[3..], at the front of the line
/// (RPUSH, consumed next) or, when ARGV[3] is `back`, at the back (LPUSH).
/// Whoever removes the record restores the message, so two restorers never
/// duplicate it; ARGV[4] `force` pushes even without a record (fanout
/// deliveries are not recorded). Returns 1 if restored.
pub(crate) static RESTORE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 and ARGV[4] ~= 'force' then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
for i = 3, #KEYS do
  if ARGV[3] == 'back' then
    redis.call('LPUSH', KEYS[i], ARGV[2])
  else
    redis.call('RPUSH', KEYS[i], ARGV[2])
  end
end
return 1
"#,
    )
});

/// Release the sweep lock KEYS[1] if it still holds our token ARGV[1].
pub(crate) static UNLOCK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});
