// The resource side: a fence keeps each resource's highest accepted token and refuses older
// ones. `Fence` is the core's, in memory; `fencedWrite` keeps the marks in IndexedDB and
// checks and writes in one transaction, so tabs writing the same store are fenced atomically.

import { WasmFence } from './wasm.js';
import { translate } from './errors.js';

export class Fence {
  constructor(inner = new WasmFence()) {
    this.inner = inner;
  }

  /** Reads a fence back from `encode()`'s bytes (throws `CORRUPT` for anything else). */
  static decode(bytes) {
    return new Fence(WasmFence.decode(bytes));
  }

  /** Checks `token` for `resource`: `{ accepted, advanced, highest }`; an accepted token raises the mark. */
  check(resource, token) {
    try {
      return this.inner.check(resource, token);
    } catch (error) {
      throw translate(error);
    }
  }

  /** The highest token accepted for `resource` (0 if none). */
  highest(resource) {
    return this.inner.highest(resource);
  }

  /** Every mark as the core's fence-file bytes. */
  encode() {
    return this.inner.encode();
  }
}

/**
 * Writes to IndexedDB only if `token` is at least the highest token accepted for `resource`:
 * in one `readwrite` transaction over `marks` and `stores`, reads the resource's mark, checks
 * the token with the core's fence, and if it is accepted stores the new mark and calls
 * `write(transaction)`, which must issue its requests at once (IndexedDB commits a transaction
 * when it has nothing left to do). Resolves with `{ accepted, highest }` once committed.
 *
 * @param {IDBDatabase} db
 * @param {{ resource: string, token: number, marks?: string, stores?: string[] }} target
 * @param {(transaction: IDBTransaction) => void} write
 */
export function fencedWrite(db, target, write) {
  const marks = target.marks ?? 'fence';
  const transaction = db.transaction([marks, ...(target.stores ?? [])], 'readwrite', { durability: 'strict' });
  return new Promise((resolve, reject) => {
    let outcome = { accepted: false, highest: 0 };
    const reading = transaction.objectStore(marks).get(target.resource);
    reading.onsuccess = () => {
      try {
        const fence = reading.result === undefined ? new WasmFence() : WasmFence.decode(new Uint8Array(reading.result));
        const checked = fence.check(target.resource, target.token);
        outcome = { accepted: checked.accepted, highest: checked.highest };
        if (!checked.accepted) {
          transaction.abort();
          return;
        }
        if (checked.advanced) transaction.objectStore(marks).put(fence.encode(), target.resource);
        write(transaction);
      } catch (error) {
        transaction.abort();
        reject(translate(error));
      }
    };
    transaction.oncomplete = () => resolve(outcome);
    transaction.onabort = () => (outcome.accepted ? reject(transaction.error) : resolve(outcome));
  });
}
