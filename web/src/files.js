// The worker's durable files (the core's DataFile names) in IndexedDB: one object store of
// name -> bytes. A write resolves only once its transaction committed with `strict`
// durability, which is the browser's fsync.

const STORE = 'files';

/** Opens (creating if needed) the database `name`. */
export function openFiles(name) {
  return new Promise((resolve, reject) => {
    const opening = indexedDB.open(name, 1);
    opening.onupgradeneeded = () => opening.result.createObjectStore(STORE);
    opening.onerror = () => reject(opening.error);
    opening.onsuccess = () => resolve(new Files(opening.result));
  });
}

class Files {
  constructor(db) {
    this.db = db;
  }

  /** Returns every stored file as `{ name: Uint8Array }`. */
  readAll() {
    return new Promise((resolve, reject) => {
      const files = {};
      const cursor = this.db.transaction(STORE, 'readonly').objectStore(STORE).openCursor();
      cursor.onerror = () => reject(cursor.error);
      cursor.onsuccess = () => {
        const at = cursor.result;
        if (at === null) {
          resolve(files);
          return;
        }
        files[String(at.key)] = new Uint8Array(at.value);
        at.continue();
      };
    });
  }

  write(file, bytes) {
    return this.commit((store) => store.put(bytes, file));
  }

  remove(file) {
    return this.commit((store) => store.delete(file));
  }

  commit(change) {
    return new Promise((resolve, reject) => {
      const transaction = this.db.transaction(STORE, 'readwrite', { durability: 'strict' });
      change(transaction.objectStore(STORE));
      transaction.oncomplete = () => resolve(undefined);
      transaction.onabort = () => reject(transaction.error ?? new Error('IndexedDB transaction aborted'));
      transaction.onerror = () => reject(transaction.error);
    });
  }
}
