// connect-memcached ships no types; this is the part the benchmark uses.
declare module 'connect-memcached' {
  import type session from 'express-session';

  interface MemcachedStoreOptions {
    hosts?: string | string[];
    prefix?: string;
    ttl?: number;
  }
  type MemcachedStoreClass = new (options?: MemcachedStoreOptions) => session.Store;
  export default function connectMemcached(expressSession: typeof session): MemcachedStoreClass;
}
