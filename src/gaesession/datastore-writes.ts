import { logId } from '../session/logger.js';
import type { SessionRecord } from '../session/record.js';
import type { RemoveResult } from '../session/store.js';
import { decodeWith } from './codec.js';
import type { DatastoreTier } from './datastore.js';

/** What a backup write did: `skipped` when Datastore holds this version or a newer one, or the session ended. */
export type BackupResult = 'written' | 'skipped';

/*
 * The version-checked writes of sessions in Datastore, each one transaction (a lookup and a
 * commit), so an older state never replaces a newer one and an ended session stays ended.
 */

/**
 * The backup of a record the cache tier took: written unless Datastore holds this version or
 * a newer one. A missing entity is written only for a new session or while `stillLive()`
 * says the session was not ended (a late backup must not bring back a logged-out session).
 */
export function backup(
  tier: DatastoreTier,
  record: SessionRecord,
  isNew: boolean,
  stillLive: () => Promise<boolean>,
): Promise<BackupResult> {
  const entity = tier.entity(record);
  return tier.transaction('backup', async (transaction): Promise<BackupResult> => {
    const found = await tier.read(transaction, record.id);
    if (found) {
      const stored = decodeWith(tier.codec, found.val, record.id);
      if (stored.version >= record.version) {
        // Same version, other bytes: the cache forked from Datastore while it was away (a
        // write on another instance); the cache's line wins with its next write.
        if (stored.version === record.version && !found.val.equals(entity.data.val)) {
          tier.logger.warn('cache and Datastore copies of a session diverged', { sessionId: logId(record.id) });
        }
        return 'skipped';
      }
    } else if (!isNew && !(await stillLive())) {
      return 'skipped';
    }
    transaction.save(entity);
    return 'written';
  });
}

/**
 * Writes `record` if the stored session is at `baseVersion` ('gone' when there is none), or,
 * with no base version, only if there is none ('conflict' otherwise).
 */
export function writeIf(
  tier: DatastoreTier,
  record: SessionRecord,
  baseVersion: number | undefined,
): Promise<'stored' | 'conflict' | 'gone'> {
  const entity = tier.entity(record);
  return tier.transaction('write', async (transaction) => {
    const stored = tier.live(record.id, await tier.read(transaction, record.id));
    if (baseVersion === undefined && stored) return 'conflict';
    if (baseVersion !== undefined && !stored) return 'gone';
    if (stored && stored.version !== baseVersion) return 'conflict';
    transaction.save(entity);
    return 'stored';
  });
}

/** Deletes the session if it is still at `version`; `gone` if it had ended already. */
export function removeIf(tier: DatastoreTier, id: string, version: number): Promise<RemoveResult> {
  return tier.transaction('remove', async (transaction): Promise<RemoveResult> => {
    const stored = tier.live(id, await tier.read(transaction, id));
    if (!stored) return 'gone';
    if (stored.version !== version) return 'conflict';
    transaction.delete(tier.key(id));
    return 'removed';
  });
}
