import type { ClientContext, Result } from 'iovalkey';
import type { ValkeyClient } from './valkey-client.js';

/**
 * Compare-and-set: stores ARGV[2] with a TTL of ARGV[3] only if the key still holds the bytes
 * ARGV[1] that the reader got. 1 stored, -1 another value is there, 0 the key is gone.
 */
const REPLACE = `
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if current ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1`;

/** Compare-and-delete: 1 deleted, -1 another value is there, 0 nothing to delete. */
const DELETE_IF = `
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if current ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
return 1`;

/**
 * Adds a member to an owner's index and makes the index live at least ARGV[2] seconds more.
 * Never shortens it: a session added earlier may outlive the one added now, and must stay
 * findable by "log out everywhere" (TTL is -1 for the set SADD just created).
 */
const ADD_OWNED = `
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1`;

// The scripts, as client commands: defineCommand sends EVALSHA and falls back to EVAL when
// the server has not seen the script (NOSCRIPT, as after a restart or on a new cluster node).
declare module 'iovalkey' {
  interface RedisCommander<Context extends ClientContext = { type: 'default' }> {
    gaesessionReplace(key: string, token: Buffer, value: Buffer, ttlSeconds: number): Result<number, Context>;
    gaesessionDeleteIf(key: string, token: Buffer): Result<number, Context>;
    gaesessionAddOwned(key: string, id: string, ttlSeconds: number): Result<number, Context>;
  }
}

/** Teaches the client the scripts above, as commands of its own. */
export function defineScripts(client: ValkeyClient): void {
  client.defineCommand('gaesessionReplace', { numberOfKeys: 1, lua: REPLACE });
  client.defineCommand('gaesessionDeleteIf', { numberOfKeys: 1, lua: DELETE_IF });
  client.defineCommand('gaesessionAddOwned', { numberOfKeys: 1, lua: ADD_OWNED });
}
