// A typed usage example: `tsc --noEmit --strict` checks it against types/index.d.ts.
import {
  connect, Engine, Fence, FencelockError, Lease, LeaseLost, Locked, ManualClock, MAX_TOKEN, Server,
} from 'fencelock';

async function example(): Promise<number> {
  const clock = new ManualClock();
  const engine = new Engine({ clock: clock.now, maxTtlMs: 60_000 });
  const acquired = engine.acquire('a', { ttl: 1000 });
  if (acquired.granted) {
    const left: number = engine.verify('a', acquired.token);
    engine.release('a', acquired.token);
    void left;
  }
  const fence = new Fence(null);
  fence.require('db', 1);

  const server = new Server({ port: 0, dataDir: null });
  const { port } = await server.listen();
  const client = await connect({ host: '127.0.0.1', port });
  try {
    const token: number = await client.using('job', { ttl: 5000, wait: 1000 }, async (lease: Lease) => {
      lease.signal.addEventListener('abort', () => {
        const reason = lease.signal.reason as LeaseLost;
        console.log(reason.reason);
      });
      return lease.token;
    });
    const lease = await client.lock('other', { ttl: 1000 });
    await lease.release();
    try {
      await client.acquire('job', { ttl: 10 });
    } catch (error) {
      if (error instanceof Locked) console.log(error.msLeft);
      else if (error instanceof FencelockError) console.log(error.code);
    }
    const locks = await client.query('j');
    console.log(locks[0]?.holders[0]?.token, MAX_TOKEN);
    return token;
  } finally {
    await client.close();
    await server.stop();
  }
}

void example();
