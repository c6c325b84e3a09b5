export * from './async-writer.js';
export * from './codec.js';
export * from './datastore.js';
export * from './memcache.js';
export * from './purge.js';
export * from './store.js';
