import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { batchWritesThisTurn } from '../../src/gaesession/write-batching.js';

/** Every chunk a loopback server received, as text, in order of arrival. */
async function loopback(): Promise<{ client: net.Socket; chunks: string[]; close: () => Promise<void> }> {
  const chunks: string[] = [];
  const server = net.createServer((socket) => socket.on('data', (data) => chunks.push(data.toString())));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const client = net.connect(port, '127.0.0.1');
  await once(client, 'connect');
  const close = async (): Promise<void> => {
    client.destroy();
    server.close();
    await once(server, 'close');
  };
  return { client, chunks, close };
}

const turnOver = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));

describe('write batching', () => {
  let socket: Awaited<ReturnType<typeof loopback>>;
  before(async () => (socket = await loopback()));
  after(() => socket.close());

  it('holds the writes of one turn and sends them together once the turn is over', async () => {
    const { client, chunks } = socket;
    for (const command of ['get a\n', 'set b\n', 'get c\n']) {
      batchWritesThisTurn(client);
      client.write(command);
    }
    assert.equal(client.writableLength, 18, 'held in this turn');
    await turnOver();
    await settle();
    assert.deepEqual(chunks, ['get a\nset b\nget c\n'], 'one write, in order');
  });

  it('lets a later turn batch again, and takes a missing socket as nothing to do', async () => {
    const { client, chunks } = socket;
    chunks.length = 0;
    batchWritesThisTurn(undefined);
    batchWritesThisTurn(client);
    client.write('one\n');
    await turnOver();
    batchWritesThisTurn(client);
    client.write('two\n');
    assert.equal(client.writableCorked, 1);
    await turnOver();
    assert.equal(client.writableCorked, 0);
    await settle();
    assert.equal(chunks.join(''), 'one\ntwo\n');
  });

  it('does not fail on a socket closed while held', async () => {
    const other = await loopback();
    batchWritesThisTurn(other.client);
    other.client.write('lost\n');
    other.client.destroy();
    await turnOver();
    await other.close();
  });
});
