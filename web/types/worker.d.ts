// Types of fencelock-web/worker: host the fencelock engine in your own worker.

export interface ServeOptions {
  /** The IndexedDB database suffix: one token ceiling per name (default `default`). */
  name?: string;
  /** Engine settings by their core names (`max_ttl_ms`, `max_wait_ms`, `lock_delay_ms`, ...). */
  config?: Record<string, number>;
  /** Server settings by their core names (`max_connections`, ...). */
  server?: Record<string, number | boolean>;
  /** Keep nothing in IndexedDB: tokens restart with the worker. */
  inMemory?: boolean;
  /** The worker's global scope (default: globalThis). */
  scope?: unknown;
  /** Where the start summary goes (default: console.info). */
  log?: (line: string) => void;
}

export interface Host {
  /** The Web Lock this worker holds while it runs. */
  readonly liveness: string;
  readonly started: { kind: string; summary: string } | null;
}

/** Serves fencelock from this worker; call it during the worker script's first run. */
export declare function serve(options?: ServeOptions): Promise<Host>;
