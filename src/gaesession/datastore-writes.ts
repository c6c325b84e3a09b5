import { logId } from '../session/logger.js';
import type { SessionRecord } from '../session/record.js';
import type { RemoveResult } from '../session/store.js';
import { decodeWith } from './codec.js';
import type { DatastoreTier, Decision } from './datastore.js';

/** What a backup write did: `skipped` when Datastore holds this version or a newer one, or the session ended. */
export type BackupResult = 'written' | 'skipped';

/*
 * The checked writes of sessions in Datastore, each a lookup and a write conditional on the
 * version looked up, so an older state never replaces a newer one and an ended session stays
 * ended.
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
  return tier.conditional('backup', record.id, async (found) => {
    if (found) {
      const stored = decodeWith(tier.codec, found.entity.val, record.id);
      if (stored.version >= record.version) {
        // Same version, other bytes: the cache forked from Datastore while it was away (a
        // write on another instance); the cache's line wins with its next write.
        if (stored.version === record.version && !found.entity.val.equals(entity.val)) {
          tier.logger.warn('cache and Datastore copies of a session diverged', { sessionId: logId(record.id) });
        }
        return { result: 'skipped' };
      }
    } else if (!isNew && !(await stillLive())) {
      return { result: 'skipped' };
    }
    return { result: 'written', write: tier.put(record.id, entity, found?.version) };
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
  return tier.conditional('write', record.id, async (found) => {
    const stored = tier.live(record.id, found?.entity);
    if (baseVersion === undefined && stored) return { result: 'conflict' };
    if (baseVersion !== undefined && !stored) return { result: 'gone' };
    if (stored && stored.version !== baseVersion) return { result: 'conflict' };
    return { result: 'stored', write: tier.put(record.id, entity, found?.version) };
  });
}

/** Deletes the session if it is still at `version`; `gone` if it had ended already. */
export function removeIf(tier: DatastoreTier, id: string, version: number): Promise<RemoveResult> {
  return tier.conditional('remove', id, async (found): Promise<Decision<RemoveResult>> => {
    const stored = tier.live(id, found?.entity);
    if (!found || !stored) return { result: 'gone' };
    if (stored.version !== version) return { result: 'conflict' };
    return { result: 'removed', write: tier.deletion(id, found.version) };
  });
}
