import net from 'node:net';

/** A memcached binary-protocol header (request or response): 24 bytes, the opcode at offset 1, the body length at 8. */
const HEADER_BYTES = 24;

/** Calls `each` with every whole frame a socket receives, in order, until the socket is destroyed. */
function onFrames(socket: net.Socket, each: (frame: Buffer, opcode: number) => void): void {
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= HEADER_BYTES && !socket.destroyed) {
      const length = HEADER_BYTES + buffered.readUInt32BE(8);
      if (buffered.length < length) break;
      const frame = buffered.subarray(0, length);
      buffered = buffered.subarray(length);
      each(frame, frame[1] ?? -1);
    }
  });
}

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
    onFrames(client, (frame, opcode) => {
      // An RST: the client sees ECONNRESET, and memcached never gets the request.
      if (resets.delete(opcode)) client.resetAndDestroy();
      else upstream.write(frame);
    });
    let delivered = Promise.resolve();
    onFrames(upstream, (frame, opcode) => {
      const lag = lags.get(opcode) ?? 0;
      lags.delete(opcode);
      delivered = delivered
        .then(() => (lag > 0 ? new Promise<void>((resolve) => setTimeout(resolve, lag)) : undefined))
        .then(() => {
          if (!client.destroyed) client.write(frame);
        });
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
