//! Lua scripts run inside Redis, each one atomic.

use std::sync::LazyLock;

/// Pop up to ARGV[1] messages from the bucket keys (KEYS[3..], in fetch
/// order) and, when ARGV[3] is `1`, record each in Kombu's unacked hash
/// (KEYS[1], `tag -> [payload, exchange, routing_key]`) and index (KEYS[2],
/// scored with the time ARGV[2]) in the same step. Kombu's BRPOP removes a
/// message before recording it, so a consumer killed in between loses it;
/// here the message is always either in its queue or in the unacked hash.
/// First, the acks that waited for this call: ARGV[4..] are tags whose
/// records go (one round trip settles a batch and fetches the next).
/// Returns a flat list: key, payload, tag, key, payload, tag...
pub(crate) static FETCH: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if #ARGV > 3 then
  local acked = {}
  for i = 4, #ARGV do acked[#acked + 1] = ARGV[i] end
  for i = 1, #acked, 1000 do
    local last = math.min(i + 999, #acked)
    redis.call('HDEL', KEYS[1], unpack(acked, i, last))
    redis.call('ZREM', KEYS[2], unpack(acked, i, last))
  end
end
local max = tonumber(ARGV[1])
local record = ARGV[3] == '1'
local out = {}
local n = 0
-- The records are written with one ZADD and one HSET for the whole batch:
-- a call from Lua costs more than the element it adds.
local scores, records = {}, {}
local function write_records()
  if #scores > 0 then
    redis.call('ZADD', KEYS[2], unpack(scores))
    redis.call('HSET', KEYS[1], unpack(records))
    scores, records = {}, {}
  end
end
-- A string field's last value in the document, when it holds no escape
-- (in Kombu's and kelp's envelopes properties come after headers, so the
-- last one is the property). Much cheaper than decoding a large envelope.
local function field(raw, name, from)
  local key = '"' .. name .. '"'
  local at, value = from, nil
  while true do
    local s, e = string.find(raw, key, at, true)
    if not s then break end
    local v = string.match(raw, '^%s*:%s*"([^"]*)"', e + 1)
    if v then value = v end
    at = e + 1
  end
  if value and not string.find(value, '\\', 1, true) then return value end
  return nil
end
for i = 3, #KEYS do
  while n < max do
    local raw = redis.call('RPOP', KEYS[i])
    if not raw then break end
    local tag = ''
    if record then
      local ex, rk = '', ''
      local entry
      local quick_tag, quick_ex, quick_rk
      if string.sub(raw, 1, 1) == '{' and string.sub(raw, -1) == '}' then
        -- The properties close the envelope: look at its end only (a large
        -- body would otherwise be scanned three times). No substring: a
        -- copy of a large string costs more here than the search.
        local from = math.max(1, #raw - 2048)
        quick_tag = field(raw, 'delivery_tag', from)
        quick_ex = field(raw, 'exchange', from)
        quick_rk = field(raw, 'routing_key', from)
      end
      local ok, doc = false, nil
      if quick_tag and quick_ex and quick_rk then
        tag, ex, rk = quick_tag, quick_ex, quick_rk
        -- Taken from a JSON string without escapes: already valid JSON text.
        entry = '[' .. raw .. ',"' .. ex .. '","' .. rk .. '"]'
      else
        ok, doc = pcall(cjson.decode, raw)
      end
      if entry then
        -- found by pattern
      elseif ok and type(doc) == 'table' and type(doc.properties) == 'table' then
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
      scores[#scores + 1] = ARGV[2]
      scores[#scores + 1] = tag
      records[#records + 1] = tag
      records[#records + 1] = entry
      -- unpack() is bounded by Lua's stack
      if #scores >= 1000 then write_records() end
    end
    out[#out + 1] = KEYS[i]
    out[#out + 1] = raw
    out[#out + 1] = tag
    n = n + 1
  end
  if n >= max then break end
end
write_records()
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

/// Publish ARGV[2] to exchange whose binding set is KEYS[1]: route
/// ARGV[1] (the routing key) through the set's members
/// (`key SEP pattern SEP queue`) and LPUSH onto each matching queue's list
/// (ARGV[4] .. queue .. ARGV[5]: key prefix and priority-bucket suffix),
/// in one round trip. ARGV[3] is `direct`, `topic`, or `auto` (topic when a
/// member carries a pattern: an exchange only Kombu declared). Topic
/// matching is AMQP's, word by word: `*` one word, `#` zero or more.
/// Returns how many queues got the message.
pub(crate) static PUBLISH: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PUBLISH_SOURCE));

/// The source of [`PUBLISH`] (loaded with SCRIPT LOAD at connect).
pub(crate) const PUBLISH_SOURCE: &str = r#"
local sep = ARGV[6]
local function words(s)
  local t = {}
  if s == '' then return t end
  for w in (s .. '.'):gmatch('([^.]*)%.') do t[#t + 1] = w end
  return t
end
local function topic(p, k)
  local pi, ki, back_p, back_k = 1, 1, nil, nil
  while true do
    if pi <= #p and p[pi] == '#' then
      back_p, back_k = pi, ki
      pi = pi + 1
    elseif pi <= #p and ki <= #k and (p[pi] == '*' or p[pi] == k[ki]) then
      pi, ki = pi + 1, ki + 1
    elseif pi > #p and ki > #k then
      return true
    elseif back_p and back_k <= #k then
      back_k = back_k + 1
      pi, ki = back_p + 1, back_k
    else
      return false
    end
  end
end
local members = redis.call('SMEMBERS', KEYS[1])
local bindings = {}
local any_pattern = false
for _, m in ipairs(members) do
  local a = string.find(m, sep, 1, true)
  if a then
    local b = string.find(m, sep, a + #sep, true)
    if b then
      local pattern = string.sub(m, a + #sep, b - 1)
      if pattern ~= '' then any_pattern = true end
      bindings[#bindings + 1] = {string.sub(m, 1, a - 1), string.sub(m, b + #sep)}
    end
  end
end
local is_topic = ARGV[3] == 'topic' or (ARGV[3] == 'auto' and any_pattern)
local key_words = is_topic and words(ARGV[1]) or nil
local seen, n = {}, 0
for _, binding in ipairs(bindings) do
  local key, queue = binding[1], binding[2]
  local hit
  if is_topic then hit = topic(words(key), key_words) else hit = key == ARGV[1] end
  if hit and not seen[queue] then
    seen[queue] = true
    redis.call('LPUSH', ARGV[4] .. queue .. ARGV[5], ARGV[2])
    n = n + 1
  end
end
return n
"#;
