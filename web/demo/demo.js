// The demo's outer page: shows who holds the lock, with which token, and who waits (from the
// worker's own query), and the writes the tabs report, accepted or refused by the fence.
import { LOCK, connectDemo } from './shared.js';

const auto = new URL(location.href).searchParams.has('auto');
if (auto) {
  // For the screenshot test: every tab takes the lock at once, so there is a holder and a queue.
  for (const frame of document.querySelectorAll('iframe')) frame.src += '&auto';
}
const locks = await connectDemo('demo page');
const holder = document.getElementById('holder');
const token = document.getElementById('token');
const queue = document.getElementById('queue');
const log = document.getElementById('log');

async function refresh() {
  const { held, pending } = await locks.query(LOCK);
  const lease = held[0];
  holder.textContent = lease ? `${lease.owner ?? 'someone'} (${lease.msLeft} ms left)` : 'nobody';
  holder.dataset.owner = lease?.owner ?? '';
  token.textContent = lease ? String(lease.token) : '-';
  queue.textContent = pending.length ? pending.map((waiter) => waiter.owner ?? '?').join(', ') : 'empty';
}

window.addEventListener('message', (event) => {
  if (event.origin !== location.origin || event.data?.demo !== 'write') return;
  const { tab, token: written, accepted, highest, at } = event.data;
  const item = document.createElement('li');
  item.className = accepted ? 'accepted' : 'refused';
  item.textContent = accepted
    ? `${at} tab ${tab} wrote with token ${written}`
    : `${at} tab ${tab} REFUSED: token ${written} is below ${highest}`;
  log.prepend(item);
});

setInterval(refresh, 250);
await refresh();
document.body.dataset.ready = 'true';
