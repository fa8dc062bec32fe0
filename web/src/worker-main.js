// The worker script that `fencelock-web` starts by default (as a module SharedWorker or
// Worker). Settings come from its URL: `?name=app&max_ttl_ms=30000&server.max_connections=64`
// (engine and `server.` settings by their core names), `in_memory=1` for no IndexedDB.

import { serve } from './worker.js';

const params = new URL(globalThis.location.href).searchParams;
/** @type {Record<string, number>} */
const config = {};
/** @type {Record<string, number>} */
const server = {};
for (const [key, value] of params) {
  if (key === 'name' || key === 'in_memory') continue;
  if (key.startsWith('server.')) server[key.slice('server.'.length)] = Number(value);
  else config[key] = Number(value);
}
serve({ name: params.get('name') ?? 'default', config, server, inMemory: params.get('in_memory') === '1' }).catch(() => {
  // serve() already logged the failure and closed the worker: its clients see it gone.
});
