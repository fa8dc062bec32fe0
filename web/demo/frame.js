// One tab of the demo: takes the lock, renews its lease by hand every 600 ms (so that pausing
// can stop it), and appends to the log through the fence while it believes it holds the lock.
import { fencedWrite } from '../dist/index.js';
import { LOCK, connectDemo, openLog } from './shared.js';

const tab = new URL(location.href).searchParams.get('tab') ?? '?';
const auto = new URL(location.href).searchParams.has('auto');
document.getElementById('name').textContent = `tab ${tab}`;
const status = document.getElementById('status');
const buttons = { take: document.getElementById('take'), pause: document.getElementById('pause'), release: document.getElementById('release') };

const locks = await connectDemo(`tab ${tab}`);
const log = await openLog();
let lease = null;
let pausedUntil = 0;

buttons.take.onclick = take;
buttons.pause.onclick = () => {
  pausedUntil = performance.now() + 4000;
  show(`paused 4 s, still thinking it holds token ${lease?.token}`);
};
buttons.release.onclick = async () => {
  const done = lease;
  lease = null;
  await done?.release().catch(() => {});
  idle('released');
};
if (auto) take();

async function take() {
  buttons.take.disabled = true;
  show('waiting in the queue...');
  try {
    lease = await locks.acquire(LOCK, { ttl: 2000, wait: 60_000 });
  } catch (error) {
    idle(`could not take the lock: ${error.message}`);
    return;
  }
  buttons.pause.disabled = false;
  buttons.release.disabled = false;
  show(`holds token ${lease.token}`);
  work(lease);
}

async function work(mine) {
  while (lease === mine) {
    await new Promise((resolve) => setTimeout(resolve, 600));
    if (lease !== mine) return;
    if (performance.now() < pausedUntil) continue;
    try {
      await mine.renew();
    } catch (error) {
      // A paused tab learns it lost the lease only now; its write below still goes out, as a
      // real paused process's would, and the fence refuses it.
      show(`lease lost (${error.code}); writing anyway with token ${mine.token}`);
      await write(mine.token);
      lease = null;
      idle(`stopped: token ${mine.token} is stale`);
      return;
    }
    await write(mine.token);
  }
}

async function write(token) {
  const entry = { tab, token, at: new Date().toLocaleTimeString() };
  const outcome = await fencedWrite(log, { resource: 'log', token, stores: ['entries'] },
    (tx) => tx.objectStore('entries').add(entry));
  parent.postMessage({ demo: 'write', ...entry, ...outcome }, location.origin);
}

function show(text) {
  status.textContent = text;
}

function idle(text) {
  show(text);
  buttons.take.disabled = false;
  buttons.pause.disabled = true;
  buttons.release.disabled = true;
}
