import { Cluster, Redis, type RedisOptions } from 'iovalkey';
/** A standalone Valkey client or a cluster client: the tier uses only what both offer. */
export type ValkeyClient = Redis | Cluster;

export interface ValkeyClientOptions {
  /**
   * `redis://` or `rediss://` (TLS), with `user:password@` for AUTH; with a cluster, its
   * discovery endpoint. A private CA (Memorystore's server CA) is trusted through Node's
   * NODE_EXTRA_CA_CERTS, which Node reads at start-up: TLS verification is never turned off.
   */
  url: string;
  /** A cluster-mode instance (Memorystore for Valkey's default): keys are routed by slot. */
  cluster: boolean;
  /** Time one command may take, in ms (default 1000). */
  commandTimeoutMs?: number | undefined;
}

/**
 * The one Valkey client of the process. Nothing waits for a connection that is not there: no
 * offline queue (a call while disconnected fails at once), no resending after a reconnect,
 * and a timeout on every command; the client reconnects by itself in the background. The
 * constructor does not wait either, so a Valkey that is down or hangs never delays start-up.
 */
export function createValkeyClient(options: ValkeyClientOptions): ValkeyClient {
  const endpoint = new URL(options.url);
  const timeout = options.commandTimeoutMs ?? 1000;
  const node: RedisOptions = {
    ...(endpoint.username ? { username: decodeURIComponent(endpoint.username) } : {}),
    ...(endpoint.password ? { password: decodeURIComponent(endpoint.password) } : {}),
    // The host name is checked against the certificate as usual.
    ...(endpoint.protocol === 'rediss:' ? { tls: {} } : {}),
    commandTimeout: timeout,
    connectTimeout: timeout,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt: number) => Math.min(50 * attempt, 500),
    // disconnect() gives a socket this long to close before destroying it, on a timer that
    // holds the process open even when the socket is long gone (2 s by default): shutdown waits.
    disconnectTimeout: 100,
  };
  const host = endpoint.hostname.replace(/^\[|\]$/g, '');
  const port = Number(endpoint.port || 6379);
  // Connection errors also reach every caller as a rejected call; the tier logs each outage once.
  const ignore = (): void => {};
  if (!options.cluster) {
    const client = new Redis({ ...node, host, port });
    client.on('error', ignore);
    return client;
  }
  // The discovery endpoint answers CLUSTER SLOTS; every node it names gets the same TLS and
  // credentials (redisOptions).
  const client = new Cluster([{ host, port }], {
    redisOptions: node,
    enableOfflineQueue: false,
    slotsRefreshTimeout: timeout,
    clusterRetryStrategy: (attempt: number) => Math.min(100 * attempt, 1000),
  });
  client.on('error', ignore);
  client.on('node error', ignore);
  return client;
}
