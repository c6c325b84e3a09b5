import net from 'node:net';

/** A memcached binary-protocol response header: 24 bytes, the body length at offset 8. */
const HEADER_BYTES = 24;

export interface LaggingProxy {
  /** host:port to give the client instead of memcached's. */
  address: string;
  /**
   * Holds back memcached's answer to the next request with this opcode for `ms`: memcached
   * has applied the request, but the client hears of it late (or, past its timeout, never).
   */
  lagNext(opcode: number, ms: number): void;
  /** Resets the client's connection when the next request with this opcode arrives, before it is passed on. */
  resetAtNext(opcode: number): void;
  close(): void;
}

/**
 * A TCP proxy in front of a real memcached that can delay one answer, or break the connection
 * under one request: faults a real server cannot produce on demand (a reply late in transit
 * after the write was applied; a connection lost before the request got through).
 * Requests pass at once; answers keep their order, so the ones behind a delayed answer wait too.
 */
export async function startLaggingProxy(memcachedAddress: string): Promise<LaggingProxy> {
  const [host = '127.0.0.1', port = '11211'] = memcachedAddress.split(':');
  const lags = new Map<number, number>();
  const resets = new Set<number>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    sockets.add(client).add(upstream);
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', closeBoth).on('close', closeBoth);
    upstream.on('error', closeBoth).on('close', closeBoth);
    let request = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      request = Buffer.concat([request, chunk]);
      while (request.length >= HEADER_BYTES) {
        const length = HEADER_BYTES + request.readUInt32BE(8);
        if (request.length < length) break;
        const frame = request.subarray(0, length);
        request = request.subarray(length);
        const opcode = frame[1] ?? -1;
        if (resets.delete(opcode)) {
          client.resetAndDestroy(); // an RST: the client sees ECONNRESET, memcached never the request
          return;
        }
        upstream.write(frame);
      }
    });

    let pending = Buffer.alloc(0);
    let delivered = Promise.resolve();
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= HEADER_BYTES) {
        const length = HEADER_BYTES + pending.readUInt32BE(8);
        if (pending.length < length) break;
        const frame = pending.subarray(0, length);
        pending = pending.subarray(length);
        const opcode = frame[1] ?? -1;
        const lag = lags.get(opcode) ?? 0;
        lags.delete(opcode);
        delivered = delivered
          .then(() => (lag > 0 ? new Promise<void>((resolve) => setTimeout(resolve, lag)) : undefined))
          .then(() => {
            if (!client.destroyed) client.write(frame);
          });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    lagNext(opcode, ms) {
      lags.set(opcode, ms);
    },
    resetAtNext(opcode) {
      resets.add(opcode);
    },
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}
