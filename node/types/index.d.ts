// Types of the public API of `fencelock`. Durations are milliseconds; tokens are numbers
// (always <= 2^53-1, so exact).

/// <reference types="node" />

import type { LockRecord, HolderRecord, WaiterRecord, StatsRecord } from '../lib/native';

export type { LockRecord, HolderRecord, WaiterRecord, StatsRecord };

/** The highest token fencelock issues: 2^53-1. */
export declare const MAX_TOKEN: number;

// -- errors ------------------------------------------------------------------------------

export interface FencelockErrorOptions {
  code?: string;
  cause?: unknown;
}

/** Base class of every fencelock error; `code` is the stable wire code. */
export declare class FencelockError extends Error {
  constructor(message?: string, options?: FencelockErrorOptions);
  static readonly code: string;
  /** The stable code (`LOCKED`, `STALE`, ...). */
  readonly code: string;
  /** The text after the code. */
  readonly detail: string;
  /** `LOCKED`, `NOTREADY`: ms until the lock (or the server) frees up. */
  msLeft?: number;
  /** `STALE`, `EXPIRED`: the token the request named. */
  token?: number;
  /** `TIMEOUT`: how long the request waited. */
  waitedMs?: number;
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
export declare class DurabilityError extends FencelockError {}
/** NOAUTH: the server requires authentication. */
export declare class AuthRequired extends FencelockError {}
/** NOPERM: the user's rules do not allow the command. */
export declare class PermissionDenied extends FencelockError {}
/** WRONGPASS: unknown user or wrong password. */
export declare class AuthFailed extends FencelockError {}
export type LostReason = 'lapsed' | 'expired' | 'stolen' | 'connection_closed' | 'refused' | 'other' | 'lost';
export declare class LeaseLost extends FencelockError {
  constructor(message?: string, options?: FencelockErrorOptions & { name?: string; token?: number; reason?: LostReason });
  readonly lockName: string;
  token: number;
  readonly reason: LostReason | '';
}
export declare class FenceRejected extends FencelockError {
  constructor(message?: string, options?: FencelockErrorOptions & { resource?: string; token?: number; highest?: number });
  readonly resource: string;
  token: number;
  readonly highest: number;
}

// -- clocks ------------------------------------------------------------------------------

/** Returns milliseconds on a monotonic clock. */
export type Clock = () => number;
export declare function monotonicClock(): Clock;
export declare class ManualClock {
  constructor(start?: number);
  ms: number;
  readonly now: Clock;
  advance(ms: number): number;
}

// -- engine ------------------------------------------------------------------------------

export interface AcquireOptions {
  /** Lease length in ms. */
  ttl: number;
  /** Wait up to this many ms in the FIFO queue when the lock is held (default: fail at once). */
  wait?: number;
  shared?: boolean;
  steal?: boolean;
  owner?: string;
  ephemeral?: boolean;
  lockDelay?: number;
}

export interface EngineOptions {
  clock?: Clock;
  start?: 'fresh' | 'crashed' | 'clean';
  ceiling?: number;
  snapshot?: Buffer | null;
  hashSeed?: Buffer;
  maxTtlMs?: number;
  maxWaitMs?: number;
  lockDelayMs?: number;
  maxLockDelayMs?: number;
  tokenBlock?: number;
  /** Any other core setting, in camelCase. */
  [setting: string]: unknown;
}

export type EngineAcquired =
  | { granted: true; name: string; token: number; expiresAt: number }
  | { granted: false; name: string; waiter: number; waitDeadline: number };

export interface EngineEvent {
  kind: 'granted' | 'wait_timed_out' | 'expired' | 'stolen';
  name: string;
  token?: number;
  waiter?: number;
  client: number;
  deadlineMs?: number;
  expiresAt?: number;
  waitedMs?: number;
  owner?: string;
  byToken?: number;
}

export declare class Engine {
  constructor(options?: EngineOptions);
  nowMs(): number;
  acquire(name: string, options: AcquireOptions & { client?: number }): EngineAcquired;
  renew(name: string, token: number, ttl: number): number;
  release(name: string, token: number): void;
  verify(name: string, token: number): number;
  cancelWait(waiter: number): boolean;
  disconnect(client: number): void;
  handleTimeout(): void;
  pollTimeout(): number | null;
  pollEvent(): EngineEvent | null;
  events(): IterableIterator<EngineEvent>;
  pollPersist(): number | null;
  query(prefix?: string): LockRecord[];
  stats(): StatsRecord;
  snapshot(): Buffer;
  graceLeft(): number;
  readonly lastToken: number;
  readonly tokenCeiling: number;
  readonly config: Record<string, number>;
  liveLocks(): number;
  liveLeases(): number;
  waiting(): number;
  checkInvariants(): void;
}

// -- fence -------------------------------------------------------------------------------

export interface FenceCheck {
  accepted: boolean;
  advanced: boolean;
  highest: number;
}

export declare class Fence {
  /** With `path`, marks persist in that file (the core's format, shared with every host). */
  constructor(path?: string | null);
  readonly path: string | null;
  check(resource: string, token: number): FenceCheck;
  require(resource: string, token: number): number;
  highest(resource: string): number;
  marks(): Map<string, number>;
  readonly size: number;
}

export declare function writeAtomic(file: string, data: Uint8Array): void;
export declare function removeDurable(file: string): void;

// -- client ------------------------------------------------------------------------------

export type Endpoint = { host?: string; port?: number } | string;

export interface ClientOptions {
  host?: string;
  port?: number;
  /**
   * Endpoints in failover order (instead of host/port). A cluster follower's `-MOVED host:port`
   * goes to the endpoint listed with that address, so give every node of a cluster.
   */
  endpoints?: Endpoint[];
  /** Longest wait for a reply, ms (default 10000; a waiting acquire adds its wait). */
  timeout?: number;
  /** Longest a connect may take, ms (default 5000). */
  connectTimeout?: number;
  /** 3 (default: lost-lease pushes) or 2. */
  protocol?: 2 | 3;
  /** Server notices about leases (RESP3 pushes). */
  onEvent?: (notice: LeaseNotice) => void;
  /**
   * TLS: `true` verifies the server against Node's CAs; an object gives PEM contents (`ca`,
   * and `cert`/`key` for a client certificate), `servername`, or any other `tls.connect` option.
   */
  tls?: boolean | (import('node:tls').ConnectionOptions & { ca?: string | Buffer | Array<string | Buffer>; cert?: string | Buffer; key?: string | Buffer; servername?: string });
  /** User to authenticate as (default `default`, the user of `--requirepass`). */
  username?: string;
  /** Password; every connection authenticates with it (HELLO 3 AUTH, or AUTH). */
  password?: string;
}

export interface LeaseNotice {
  kind: string;
  name: string;
  token: number;
  byToken: number | null;
}

export interface ClientAcquireOptions extends AcquireOptions {
  signal?: AbortSignal;
}

export interface LockOptions extends Partial<ClientAcquireOptions> {
  /** Renew the lease until it is released (default true). */
  autoRenew?: boolean;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

/** A granted lease: pass `token` to the protected resource with every write. */
export declare class Lease implements AsyncDisposable {
  readonly name: string;
  readonly token: number;
  readonly ttl: number;
  readonly shared: boolean;
  readonly owner: string | null;
  readonly ephemeral: boolean;
  /** Aborts, with a LeaseLost reason, when the lease is lost. */
  readonly signal: AbortSignal;
  readonly lost: boolean;
  readonly lostReason: string | null;
  /** The conservative local deadline, on the client's clock (ms). */
  readonly expiresAt: number;
  /** ms left by the local conservative estimate. */
  readonly timeLeft: number;
  throwIfLost(): void;
  release(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export declare class Client implements AsyncDisposable {
  constructor(options?: ClientOptions | Endpoint[]);
  nowMs(): number;
  acquire(name: string, options: ClientAcquireOptions): Promise<Lease>;
  renew(name: string, token: number, ttl: number, options?: RequestOptions): Promise<number>;
  release(name: string, token: number, options?: RequestOptions): Promise<void>;
  verify(name: string, token: number, options?: RequestOptions): Promise<number>;
  query(prefix?: string, options?: RequestOptions): Promise<LockRecord[]>;
  /** Every lock under `prefix`, in name order, fetched a page (QUERY ... COUNT CURSOR) at a time. */
  iterLocks(prefix?: string, options?: RequestOptions & { pageSize?: number }): AsyncIterableIterator<LockRecord>;
  info(options?: RequestOptions): Promise<Record<string, string | number>>;
  ping(options?: RequestOptions): Promise<void>;
  command(...args: Array<string | number | bigint | Uint8Array>): Promise<unknown>;
  lock(name: string, options?: LockOptions): Promise<Lease>;
  using<T>(name: string, options: LockOptions, fn: (lease: Lease) => Promise<T> | T): Promise<T>;
  using<T>(name: string, fn: (lease: Lease) => Promise<T> | T): Promise<T>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Creates a client and checks that a server answers. */
export declare function connect(options?: ClientOptions | Endpoint[]): Promise<Client>;

// -- server ------------------------------------------------------------------------------

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
  critical(message: string): void;
}

export interface ServerOptions {
  host?: string;
  /** 0 for any free port (default 7380). */
  port?: number;
  /** Data directory for the token ceiling and the snapshot; null: in memory. */
  dataDir?: string | null;
  maxTtlMs?: number;
  lockDelayMs?: number;
  maxConnections?: number;
  testClock?: boolean;
  readyFile?: string;
  /** TLS certificate chain and key (PEM file paths). */
  tlsCert?: string;
  tlsKey?: string;
  /** PEM file path: clients must then present a certificate this CA signed. */
  tlsCa?: string;
  /** A TLS handshake not done by then is closed (default 10000). */
  tlsHandshakeTimeoutMs?: number;
  /** `HOST:PORT` to serve Prometheus metrics on (GET /metrics). */
  metrics?: string;
  /** More core engine settings, in camelCase. */
  engine?: Record<string, number>;
  /** More core server settings, in camelCase (`maxOutputBytes`, ...). */
  limits?: Record<string, number>;
  log?: Logger;
  /** Called with an exit status when a durable write fails (default: process.exit). */
  onFatal?: (status: number) => void;
  /**
   * `native` (default for plain TCP): the addon's socket loop on a thread of its own;
   * `net`: Node's `net` module (always used with TLS).
   */
  io?: 'native' | 'net';
}

export declare class Server {
  constructor(options?: ServerOptions);
  /** `fresh`, `crashed`, `clean`, `snapshot-refused` or `in-memory`. */
  readonly startKind: string;
  readonly address?: { host: string; port: number };
  /** Where metrics are served, once listening with `metrics`. */
  readonly metricsAddress: { host: string; port: number } | null;
  nowMs(): number;
  listen(): Promise<{ host: string; port: number }>;
  stop(): Promise<void>;
  /** Open connections, those closing, those not read from (replies unread), and the most bytes held for one. */
  connectionStats(): { open: number; closing: number; paused: number; maxHeldBytes: number };
}

/** Serves until SIGTERM or SIGINT, then shuts down cleanly; resolves to the exit status. */
export declare function serve(options?: ServerOptions): Promise<number>;

declare const fencelock: {
  Engine: typeof Engine;
  Fence: typeof Fence;
  Client: typeof Client;
  Server: typeof Server;
  Lease: typeof Lease;
  connect: typeof connect;
  serve: typeof serve;
  MAX_TOKEN: number;
};
export default fencelock;
