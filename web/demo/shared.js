// What the demo's pages share: the worker they talk to and the IndexedDB log they write.
import { connect } from '../dist/index.js';

export const LOCK = 'demo';
export const WORKER = new URL('../dist/worker-main.js?name=demo', import.meta.url);

export function connectDemo(owner) {
  return connect({ worker: WORKER, owner });
}

/** Opens the log: `fence` holds the marks, `entries` the accepted writes. */
export function openLog() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open('fencelock-demo-log', 1);
    open.onupgradeneeded = () => {
      open.result.createObjectStore('fence');
      open.result.createObjectStore('entries', { autoIncrement: true });
    };
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
}
