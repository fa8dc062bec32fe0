// A typed use of the package, checked with tsc --strict (npm run typecheck): the declarations
// must accept what the README shows and reject what it should not.
import { connect, Fence, fencedWrite, LeaseLost, Locked, type Lease, type LockSnapshot } from 'fencelock-web';
import { serve } from 'fencelock-web/worker';

export async function page(db: IDBDatabase): Promise<number> {
  const locks = await connect({ owner: 'tab 1' });
  const token: number = await locks.request('orders', { mode: 'exclusive', ttl: 5000 }, async (lease: Lease) => {
    lease.signal.addEventListener('abort', () => {
      const reason = lease.signal.reason as LeaseLost;
      console.log(reason.reason, reason.lockName);
    });
    const outcome = await fencedWrite(db, { resource: 'orders', token: lease.token, stores: ['orders'] }, (tx) => {
      tx.objectStore('orders').put({ id: 1 });
    });
    return outcome.accepted ? lease.token : 0;
  });
  const maybe = await locks.request('orders', { ifAvailable: true }, (lease) => lease?.token ?? null);
  const snapshot: LockSnapshot = await locks.query('ord');
  const lease = await locks.acquire('orders', { ttl: 1000, wait: 100, signal: AbortSignal.timeout(500) });
  await lease.renew(2000);
  await lease.verify();
  await lease.release();
  try {
    await locks.acquire('orders');
  } catch (error) {
    if (error instanceof Locked) console.log(error.msLeft);
  }
  const fence = new Fence();
  const check = fence.check("orders", token);
  // @ts-expect-error tokens are numbers
  fence.check('orders', 'one');
  // @ts-expect-error mode is exclusive or shared
  await locks.acquire('orders', { mode: 'write' });
  locks.close();
  return check.highest + snapshot.held.length + (maybe ?? 0);
}

export async function worker(): Promise<string> {
  const host = await serve({ name: 'app', config: { max_ttl_ms: 30_000 } });
  return host.liveness;
}
