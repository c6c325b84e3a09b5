import { randomBytes } from 'node:crypto';
import { PropertyFilter, type Datastore } from '@google-cloud/datastore';
import type { ServerProcess } from './server-process.js';

export interface PurgeThroughput {
  inserted: number;
  deleted: number;
  completed: boolean;
  seconds: number;
  deletesPerSecond: number;
  /** Expired entities still there afterwards (should be 0). */
  remaining: number;
}

const BATCH = 500;

/**
 * Fills the emulator with `count` expired sessions (in batches of 500, the Datastore limit per
 * commit), then calls the app's cron route once and times it.
 */
export async function purgeThroughput(
  server: ServerProcess,
  datastore: Datastore,
  count: number,
): Promise<PurgeThroughput> {
  const kind = process.env['DATASTORE_KIND'] || 'sess_';
  const expired = new Date(Date.now() - 3_600_000);
  const val = JSON.stringify({ id: 'x'.repeat(24), created: expired, accessed: expired, timeout: 1800, version: 3 });
  const batches: number[] = [];
  for (let left = count; left > 0; left -= BATCH) batches.push(Math.min(BATCH, left));
  // A few batches at a time: quicker than one by one, gentler on the emulator than all at once.
  for (let i = 0; i < batches.length; i += 4) {
    await Promise.all(
      batches.slice(i, i + 4).map((size) =>
        datastore.insert(
          Array.from({ length: size }, () => ({
            key: datastore.key([kind, randomBytes(18).toString('base64url')]),
            data: [
              { name: 'exp', value: expired },
              { name: 'val', value: val, excludeFromIndexes: true },
            ],
          })),
        ),
      ),
    );
  }

  const started = process.hrtime.bigint();
  const response = await fetch(`${server.url}/demo/purge`, { headers: { 'X-Appengine-Cron': 'true' } });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (!response.ok) throw new Error(`purge answered ${response.status}: ${await response.text()}`);
  const { completed, deleted } = (await response.json()) as { completed: boolean; deleted: number };

  const [left] = await datastore.runQuery(
    datastore
      .createQuery(kind)
      .select('__key__')
      .filter(new PropertyFilter('exp', '<', new Date()))
      .limit(count),
  );
  return { inserted: count, deleted, completed, seconds, deletesPerSecond: deleted / seconds, remaining: left.length };
}
