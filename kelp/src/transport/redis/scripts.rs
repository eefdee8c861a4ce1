//! Lua scripts run inside Redis, each one atomic.

use std::sync::LazyLock;

/// Give back what consumers took but never recorded. The registry KEYS[1]
/// maps each processing list to `owner SEP source list` (ARGV[2] the
/// separator). With lists KEYS[2..], those are given back (a fetch that
/// failed before recording); without, every list whose owner's liveness key
/// (ARGV[1] .. owner) is gone (a consumer that died). Messages go back onto
/// the consuming end of their source list, oldest consumed first again, and
/// the lists are forgotten. Such a message never reached an application (a
/// consumer hands messages out only after recording them), so it is not
/// marked redelivered. Returns how many came back.
pub(crate) static GIVE_BACK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local function give_back(list, value)
  local moved = 0
  local at = string.find(value, ARGV[2], 1, true)
  if at then
    local source = string.sub(value, at + #ARGV[2])
    while redis.call('LMOVE', list, source, 'LEFT', 'RIGHT') do moved = moved + 1 end
  end
  redis.call('HDEL', KEYS[1], list)
  return moved
end
local moved = 0
if #KEYS > 1 then
  for i = 2, #KEYS do
    local value = redis.call('HGET', KEYS[1], KEYS[i])
    if value then moved = moved + give_back(KEYS[i], value) end
  end
  return moved
end
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local value = entries[i + 1]
  local at = string.find(value, ARGV[2], 1, true)
  local owner = at and string.sub(value, 1, at - 1) or ''
  if redis.call('EXISTS', ARGV[1] .. owner) == 0 then
    moved = moved + give_back(entries[i], value)
  end
end
return moved
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

/// Refresh liveness key KEYS[1] (for ARGV[1] ms) unless KEYS[2], the
/// connection's tombstone, says a successor already gave back what it held:
/// a pipeline that a partition delayed past that point must not bring the
/// dead connection back to life (its late writes are then swept at once).
pub(crate) static ALIVE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(ALIVE_SOURCE));

/// The source of [`ALIVE`] (loaded with SCRIPT LOAD at connect).
pub(crate) const ALIVE_SOURCE: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return 1
"#;

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
