// Types of fencelock-web: a Web-Locks-shaped client with leases and fencing tokens, talking to
// the fencelock worker of this origin.

export type LockMode = 'exclusive' | 'shared';

export interface ConnectOptions {
  /** The worker to use: a script URL (default: the package's worker-main.js), or a started SharedWorker, Worker or MessagePort. */
  worker?: string | URL | SharedWorker | Worker | MessagePort;
  /** Start a SharedWorker (default when the browser has them) or a dedicated Worker. */
  shared?: boolean;
  /** The owner label queries show for this client's leases. */
  owner?: string;
  /** Longest a request waits for its reply, in ms (a waiting acquire adds its wait). */
  requestTimeoutMs?: number;
  /** Longest opening a connection to the worker may take, in ms. */
  connectTimeoutMs?: number;
  /** Called with every lease event and server notice. */
  onEvent?: (event: ClientEvent) => void;
}

export interface AcquireOptions {
  mode?: LockMode;
  /** The lease's time to live, in ms (default 10 000). */
  ttl?: number;
  /** How long to wait in the FIFO queue, in ms (acquire: 0; request: the worker's max_wait_ms). */
  wait?: number;
  /** Take the lock from its holders; their tokens become stale and their signals abort. */
  steal?: boolean;
  /** End the lease when this page's connection ends (default true). */
  ephemeral?: boolean;
  owner?: string;
  /** Keep the lock unavailable this long after the lease lapses, in ms. */
  lockDelay?: number;
  /** Gives up waiting (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Have the client renew the lease until it is released (request() always does). */
  keepAlive?: boolean;
}

export interface RequestOptions extends Omit<AcquireOptions, 'keepAlive'> {
  /** Do not wait: the callback gets null if the lock is held. */
  ifAvailable?: boolean;
}

export interface HeldInfo {
  name: string;
  mode: LockMode;
  token: number;
  owner: string | null;
  msLeft: number;
  clientId: string;
}

export interface PendingInfo {
  name: string;
  mode: LockMode;
  owner: string | null;
  msLeft: number;
  position: number;
  clientId: string;
}

export interface LockSnapshot {
  held: HeldInfo[];
  pending: PendingInfo[];
}

export interface ClientEvent {
  kind: 'lease_lost' | 'notice';
  name: string;
  token: number;
  reason?: string;
  description?: string;
  byToken?: number;
  notice?: string;
}

export interface WorkerInfo {
  /** The Web Lock the worker holds while it runs. */
  liveness: string;
  /** How its engine started: `fresh`, `crashed` (tokens resume above the stored ceiling), ... */
  started: { kind: string; summary: string } | null;
  settings: { maxWaitMs: number; maxTtlMs: number };
}

export declare class Lease {
  readonly name: string;
  /** The fencing token: give it to the resource with every write. */
  readonly token: number;
  readonly mode: LockMode;
  /** Aborts (reason: a LeaseLost) when the lease is lost: expired, stolen, refused, or the worker gone. */
  readonly signal: AbortSignal;
  /** The ms the lease surely has left by the client's conservative deadline. */
  readonly msLeft: number;
  /** Why the lease was lost, or null. */
  readonly lost: LeaseLost | null;
  throwIfLost(): void;
  renew(ttl?: number): Promise<number>;
  verify(): Promise<number>;
  release(): Promise<void>;
}

export declare class Locks {
  request<T>(name: string, callback: (lease: Lease) => T | Promise<T>): Promise<T>;
  request<T>(name: string, options: RequestOptions & { ifAvailable: true }, callback: (lease: Lease | null) => T | Promise<T>): Promise<T>;
  request<T>(name: string, options: RequestOptions, callback: (lease: Lease) => T | Promise<T>): Promise<T>;
  acquire(name: string, options?: AcquireOptions): Promise<Lease>;
  renew(name: string, token: number, ttl?: number): Promise<number>;
  release(name: string, token: number): Promise<void>;
  verify(name: string, token: number): Promise<number>;
  query(prefix?: string): Promise<LockSnapshot>;
  worker(): Promise<WorkerInfo>;
  close(): void;
}

export declare function connect(options?: ConnectOptions): Promise<Locks>;
export declare const DEFAULT_TTL_MS: number;

export interface FenceCheck {
  accepted: boolean;
  advanced: boolean;
  highest: number;
}

export declare class Fence {
  constructor();
  static decode(bytes: Uint8Array): Fence;
  check(resource: string, token: number): FenceCheck;
  highest(resource: string): number;
  encode(): Uint8Array;
}

export declare function fencedWrite(
  db: IDBDatabase,
  target: { resource: string; token: number; marks?: string; stores?: string[] },
  write: (transaction: IDBTransaction) => void,
): Promise<{ accepted: boolean; highest: number }>;

export declare function constants(): { dataFiles: string[]; fenceFileVersion: number; maxToken: number; snapshotVersion: number; version: string };

export declare class FencelockError extends Error {
  constructor(message?: string, options?: { code?: string; cause?: unknown; msLeft?: number; token?: number; waitedMs?: number });
  readonly code: string;
  readonly detail: string;
  readonly msLeft?: number;
  readonly token?: number;
  readonly waitedMs?: number;
}
export declare class Locked extends FencelockError {}
export declare class Stale extends FencelockError {}
export declare class Expired extends FencelockError {}
export declare class LockTimeout extends FencelockError {}
export declare class NotReady extends FencelockError {}
export declare class LimitReached extends FencelockError {}
export declare class TokensExhausted extends FencelockError {}
export declare class BadRequest extends FencelockError {}
export declare class ProtocolError extends FencelockError {}
export declare class ConnectionLost extends FencelockError {}
export declare class InternalError extends FencelockError {}
export declare class LeaseLost extends FencelockError {
  readonly lockName: string;
  readonly reason: string;
}
