/** One client: connections, requests in flight, tracked leases. */
export declare class NativeClient {
  /** Creates a client. */
  constructor(settings?: ClientSettings | undefined | null)
  /** Queues an ACQUIRE and returns its request id. */
  acquire(nowMs: number, name: string, ttlMs: number, options?: AcquireOpts | undefined | null): number
  /** Queues a RENEW. */
  renew(nowMs: number, name: string, token: number, ttlMs: number): number
  /** Queues a RELEASE. */
  release(nowMs: number, name: string, token: number): number
  /** Queues a VERIFY. */
  verify(nowMs: number, name: string, token: number): number
  /** Queues a QUERY. */
  query(nowMs: number, prefix?: string | undefined | null): number
  /**
   * Queues one page of a QUERY: at most `count` locks after `cursor` ("" for the first);
   * the reply has `locks` and `cursor` (empty after the last page).
   */
  queryPage(nowMs: number, prefix: string, count: number, cursor?: string | undefined | null): number
  /** Queues an INFO. */
  info(nowMs: number, section?: string | undefined | null): number
  /** Queues a PING. */
  ping(nowMs: number): number
  /** Queues any command (name first); its reply comes back as a raw value. */
  command(nowMs: number, argv: Array<Buffer>): number
  /** Gives up on a request (a waiting acquire's connection is closed). */
  cancel(nowMs: number, request: number): void
  /** Keeps a tracked lease alive; false if it is not tracked. */
  keepAlive(name: string, token: number): boolean
  /** Stops tracking a lease. */
  forget(name: string, token: number): void
  /** Returns a tracked lease's status, or null. */
  lease(nowMs: number, name: string, token: number): LeaseRecord | null
  /** Reports that a connection is open. */
  handleConnected(nowMs: number, conn: number): void
  /** Feeds bytes received on a connection. */
  receive(nowMs: number, conn: number, data: Buffer): void
  /** Reports that a connection failed or closed. */
  handleDisconnect(nowMs: number, conn: number, reason: string): void
  /** Does what is due. */
  handleTimeout(nowMs: number): void
  /** Closes every connection. */
  close(nowMs: number): void
  /** Returns when `handleTimeout` is next due, in ms, or null. */
  pollTimeout(): number | null
  /** Returns every pending output, reply and event, and the next timeout. */
  drain(): ClientDrain
  /** Returns the connection a pending request was sent on, or null. */
  requestConn(request: number): number | null
  /** Returns how many requests await their reply. */
  pending(): number
  /** Returns how many connections are open or opening. */
  connections(): number
}

/** A replicated server node: the core's `ClusterNode` (protocol server plus replication driver). */
export declare class NativeCluster {
  /**
   * Creates a node of cluster `cluster` reachable at `advertise` (`host:port`), with the
   * election lease TTL `electionTtlS` (default 2), engine settings `config` and protocol
   * limits `serverSettings` as for `NativeServer`, a snapshot every `snapshotEvery`
   * batches (default 1000, 0: never), and up to `pipelineDepth` appends in flight (default 1).
   */
  constructor(cluster: string, advertise: string, electionTtlS?: number | undefined | null, config?: Record<string, number> | undefined | null, serverSettings?: Record<string, number> | undefined | null, nowMs?: number | undefined | null, snapshotEvery?: number | undefined | null, pipelineDepth?: number | undefined | null)
  /** Registers a connection and returns its id. */
  connect(nowMs: number): number
  /** Feeds received bytes, split anywhere. */
  receive(nowMs: number, conn: number, data: Uint8Array): void
  /** Forgets a connection the host closed. */
  disconnect(nowMs: number, conn: number): void
  /** Reports how many bytes the host holds unsent for a connection. */
  handleUnsent(nowMs: number, conn: number, unsentBytes: number): void
  /** Runs what is due (spurious calls are harmless). */
  handleTimeout(nowMs: number): void
  /**
   * Stops serving: every connection closes and the election lease is revoked (the next
   * `drainEtcd` holds the revoke).
   */
  shutdown(nowMs: number): void
  /** Returns when `handleTimeout` must next be called, in ms, or null. */
  pollTimeout(): number | null
  /**
   * Returns every pending output (`transmit`, `close`), in order, shaped as
   * `NativeServer.drain` shapes them.
   */
  drain(): Array<ServerOutput>
  /** Returns every pending etcd operation, in order. */
  drainEtcd(): Array<EtcdOpRecord>
  /** Reports a granted lease. */
  leaseGranted(nowMs: number, id: number, lease: string): void
  /** Reports a keep-alive's answer: the TTL left in seconds (0 or less: the lease is gone). */
  keepAlive(nowMs: number, id: number, ttlS: string): void
  /**
   * Reports a campaign's answer: whether this node's key was written, and the election key
   * as it stands (this node's, or the current leader's).
   */
  campaignResult(nowMs: number, id: number, won: boolean, leader: EtcdKeyValue): void
  /** Reports a guarded append's answer (`succeeded` false: a compare failed). */
  appendResult(nowMs: number, id: number, succeeded: boolean, revision: string): void
  /** Reports a range's answer: the store revision and the keys in key order. */
  rangeResult(nowMs: number, id: number, revision: string, kvs: Array<EtcdKeyValue>): void
  /** Reports a batch of a watch's events, in revision order. */
  events(nowMs: number, id: number, events: Array<EtcdWatchEvent>): void
  /** Reports a completed revoke. */
  done(nowMs: number, id: number): void
  /** Reports a failed call (its outcome unknown) or a watch that ended. */
  failed(nowMs: number, id: number, reason: string): void
  /**
   * Sets the users connections must authenticate as from a users file's bytes, or turns
   * authentication off with null; kept across leadership changes. Throws (code `ERR`) for
   * a file the core refuses; the users in force stay then.
   */
  setUsers(usersFile?: Buffer | undefined | null): void
  /** Sets one user, `default`, with every right and this password hash (`--requirepass`). */
  setPasswordHash(hash: string): void
  /** Returns true when connections must authenticate. */
  authRequired(): boolean
  /** Returns the next audit event (`kind`, `text`, `json`), or null; never holds a password. */
  pollAudit(): AuditRecord | null
  /** Returns the Prometheus text exposition of this node (server and cluster gauges). */
  metrics(nowMs: number): string
  /** Returns the node's role: `starting`, `follower`, `candidate`, `leader` or `stopped`. */
  role(): string
  /** Returns the current leader's advertised address, if known. */
  leader(): string | null
  /** Returns the last log index applied or committed. */
  logIndex(): number
  /** Returns the highest etcd revision seen. */
  etcdRevision(): number
  /** Returns the index of the newest log snapshot this node knows of (0: none). */
  snapshotIndex(): number
  /** Returns how many leases are live in this node's engine. */
  liveLeases(): number
  /** Returns the highest token this node's engine has issued or replayed. */
  lastToken(): number
}

/** The core engine. Every method that needs time takes `nowMs` first. */
export declare class NativeEngine {
  /**
   * Creates an engine. `start` is `fresh`, `crashed` (with `ceiling`, and the bytes of the
   * `horizon` file the last run left, if any) or `clean` (with `ceiling` and `snapshot`);
   * `config` overrides settings by their core names. `bootId` and `monotonicMs` (the
   * system monotonic clock read with `nowMs`) give the engine a boot clock, so that it
   * keeps a lease horizon.
   */
  constructor(config?: Record<string, number> | undefined | null, hashSeed?: Buffer | undefined | null, start?: string | undefined | null, ceiling?: number | undefined | null, snapshot?: Buffer | undefined | null, nowMs?: number | undefined | null, bootId?: string | undefined | null, monotonicMs?: number | undefined | null, horizon?: Buffer | undefined | null)
  /** Acquires; returns `{ token, deadlineMs }` or `{ waiter, deadlineMs }`. */
  acquire(nowMs: number, name: string, ttlMs: number, options?: AcquireOpts | undefined | null): AcquireResult
  /** Renews the lease (name, token) to `ttlMs` from now; returns ms left. */
  renew(nowMs: number, name: string, token: number, ttlMs: number): number
  /** Releases the lease (name, token). */
  release(nowMs: number, name: string, token: number): void
  /** Returns ms left on the lease (name, token). */
  verify(nowMs: number, name: string, token: number): number
  /** Withdraws a queued request; returns whether it was still waiting. */
  cancelWait(nowMs: number, waiter: number): boolean
  /** Drops the client's waits and EPHEMERAL leases. */
  disconnect(nowMs: number, client: number): void
  /** Does whatever is due at `nowMs` (spurious calls are harmless). */
  handleTimeout(nowMs: number): void
  /** Returns the next deadline in ms, or null. */
  pollTimeout(): number | null
  /** Returns the next event, or null. */
  pollEvent(): EngineEvent | null
  /** Returns a raised token ceiling to make durable before delivering results, or null. */
  pollPersist(): number | null
  /** Returns locks whose name starts with `prefix`, sorted by name. */
  query(nowMs: number, prefix?: string | undefined | null): Array<LockRecord>
  /** Returns the counters since start. */
  stats(): StatsRecord
  /** Returns the clean-shutdown snapshot as bytes (JSON, identical on every host). */
  snapshot(nowMs: number): Buffer
  /** Returns the restart grace left in ms (0: ready). */
  graceLeft(nowMs: number): number
  /**
   * Returns the case that decided the restart grace: `none`, `horizon`, `rebooted`,
   * `no-boot-id`, `no-horizon` or `stale-horizon`.
   */
  graceCase(): string
  /**
   * Returns the bytes of a lease horizon file that must be made durable (before the
   * ceiling of `pollPersist`) before any reply of the same call is delivered, or null.
   */
  pollHorizon(): Buffer | null
  /** Returns the highest token issued (0 if none). */
  lastToken(): number
  /** Returns the token ceiling handed out for persisting. */
  tokenCeiling(): number
  /** Returns how many locks exist. */
  liveLocks(): number
  /** Returns how many leases are live. */
  liveLeases(): number
  /** Returns how many requests wait. */
  waiting(): number
  /** Returns null if every invariant holds, else a description of the first broken one. */
  checkInvariants(): string | null
  /** Returns the configuration by core setting name. */
  config(): Record<string, number>
}

/** An in-memory fence. */
export declare class NativeFence {
  /** Creates an empty fence. */
  constructor()
  /**
   * Decodes the content of a fence file.
   *
   * # Errors
   * The bytes are not a fence file: a fence that forgot its marks would accept stale tokens.
   */
  static decode(data: Buffer): NativeFence
  /** Returns every mark as the content of a fence file, to write atomically and durably. */
  encode(): Buffer
  /** Checks `token` for `resource` and advances the mark if it is accepted. */
  check(resource: string, token: number): FenceCheck
  /** Returns the highest token accepted for `resource` (0 if none). */
  highest(resource: string): number
  /** Raises the mark of `resource` to at least `token`. */
  restore(resource: string, token: number): void
  /** Returns every mark. */
  marks(): Array<FenceMarkRecord>
}

/** The core's sans-IO protocol server with its engine. */
export declare class NativeServer {
  /**
   * Creates a server with no data directory. `config` holds engine settings,
   * `serverConfig` protocol limits (`max_connections`, ..., `test_clock` as 0/1); `start`
   * is as for `NativeEngine`.
   */
  constructor(config?: Record<string, number> | undefined | null, serverSettings?: Record<string, number> | undefined | null, hashSeed?: Buffer | undefined | null, start?: string | undefined | null, ceiling?: number | undefined | null, snapshot?: Buffer | undefined | null, nowMs?: number | undefined | null)
  /**
   * Starts a server from the data directory's files as the host read them: `files` maps
   * each name of `constants().dataFiles` to its bytes (absent or null: no such file).
   * `recovery()` then says which start was taken and what to do on disk before serving.
   *
   * `bootId` (Linux: `/proc/sys/kernel/random/boot_id`) and `monotonicMs` (the system
   * monotonic clock, read with `nowMs`) let the server keep a lease horizon, so a crash
   * restart on the same boot waits only until it; without them the grace is the full one.
   *
   * # Errors
   * A corrupt ceiling or horizon file (guessing could reissue tokens or end a grace early)
   * or an unknown file name.
   */
  static recover(nowMs: number, files: Record<string, Buffer | undefined | null>, config?: Record<string, number> | undefined | null, serverSettings?: Record<string, number> | undefined | null, hashSeed?: Buffer | undefined | null, bootId?: string | undefined | null, monotonicMs?: number | undefined | null): NativeServer
  /**
   * Returns how `recover` started this server (once: its actions move to the caller), or
   * null if it was built directly.
   */
  takeRecovery(): RecoveryRecord | null
  /**
   * Ends the run cleanly: the outputs then yield the ceiling write, the last transmits and
   * closes (every connection), and the snapshot write, in order.
   */
  shutdown(nowMs: number): void
  /** Registers a connection and returns its id (never 0). */
  connect(nowMs: number): number
  /** Feeds received bytes, split anywhere. */
  receive(nowMs: number, conn: number, data: Buffer): void
  /**
   * Feeds received bytes like `receive`, for the common case of a request answered at once:
   * when everything they caused is at most one transmit to `conn` and the timer armed from
   * `pollTimeout` is still right, returns that transmit's bytes as a Latin-1 string (empty
   * if there is none) for the host to write. Otherwise returns null, and the host performs
   * `drain()` and re-arms its timer as after `receive`. One call instead of three, and no
   * output objects.
   */
  receiveReply(nowMs: number, conn: number, data: Uint8Array): string | null
  /** Runs one already-framed request (command name first). */
  execute(nowMs: number, conn: number, argv: Array<Buffer>): void
  /** Forgets a connection the host closed (drops its waits and EPHEMERAL leases). */
  disconnect(nowMs: number, conn: number): void
  /** Reports how many bytes the host holds unsent for a connection. */
  handleUnsent(nowMs: number, conn: number, unsentBytes: number): void
  /** Runs what is due (spurious calls are harmless). */
  handleTimeout(nowMs: number): void
  /**
   * Returns every pending output, in the order they must be performed: a transmit's bytes
   * as a Latin-1 string (write it with the `'latin1'` encoding), a file's as a buffer.
   */
  drain(): Array<ServerOutput>
  /**
   * Returns when `handleTimeout` must next be called, in ms, or null. Arm the timer for
   * exactly that instant (no margin); a call at or after it always makes progress.
   */
  pollTimeout(): number | null
  /** Returns how many connections are open. */
  connections(): number
  /** Returns whether `shutdown` was called. */
  isStopped(): boolean
  /** Returns the restart grace left in ms. */
  graceLeft(nowMs: number): number
  /** Returns the highest token issued. */
  lastToken(): number
  /** Returns how many leases are live. */
  liveLeases(): number
  /** Returns how many locks exist. */
  liveLocks(): number
  /**
   * Returns the Prometheus text exposition of the server's metrics, to serve at
   * `GET /metrics` (rendered by the core, so every host serves the same text).
   */
  metrics(nowMs: number): string
  /** Records how long one durable data-directory change took, in microseconds. */
  recordPersist(micros: number): void
  /**
   * Sets the users from a users file's bytes (JSON, parsed by the core), or turns
   * authentication off with null. Throws (code `ERR`) for a file the core refuses; the
   * users in force stay then. The message never shows a password hash.
   */
  setUsers(usersFile?: Buffer | undefined | null): void
  /** Sets one user, `default`, with every right and this password hash (`--requirepass`). */
  setPasswordHash(hash: string): void
  /** Returns true when connections must authenticate. */
  authRequired(): boolean
  /** Returns the next audit event (`kind`, `text`, `json`), or null; never holds a password. */
  pollAudit(): AuditRecord | null
}

/** The native socket loop serving one listening socket; made by `start`. */
export declare class NativeTcpLoop {
  /**
   * Binds `host`:`port` (0: any free port) and serves `server`'s core on a thread of its
   * own from now on (`server` is left empty). `nowMs` is the host's clock now: the loop's
   * clock continues it. `dataDir` (null: in memory) receives the core's durable writes.
   * `notify` is called with no useful argument whenever `pollEvents` has something.
   *
   * # Errors
   * The address cannot be resolved or bound.
   */
  static start(server: NativeServer, host: string, port: number, nowMs: number, dataDir: string | undefined | null, notify: (event: number) => void): NativeTcpLoop
  /** The bound address's host. */
  get host(): string
  /** The bound port. */
  get port(): number
  /** Returns what the loop has to say since the last call, in order. */
  pollEvents(): Array<LoopEvent>
  /**
   * Asks the loop to stop: it stops accepting, shuts the core down (the ceiling write,
   * the last replies and closes, the snapshot write), flushes for up to a second and then
   * queues a `stopped` event. Calling it again is harmless.
   */
  stop(): void
  /** Waits for the loop's thread to end (after the `stopped` or `fatal` event). */
  join(): void
  /** Returns the Prometheus text exposition of the server's metrics. */
  metrics(): string
  /**
   * Sets the users from a users file's bytes, or turns authentication off with null (as
   * `NativeServer.setUsers`).
   */
  setUsers(usersFile?: Buffer | undefined | null): void
  /** Sets one user, `default`, with every right and this password hash (`--requirepass`). */
  setPasswordHash(hash: string): void
  /** Returns how many leases are live. */
  liveLeases(): number
  /** Returns how many connections the core has open. */
  connections(): number
  /** Returns what the loop's connections hold. */
  stats(): LoopStats
}

/** Options of an acquire, as the engine and the client take them (all optional). */
export interface AcquireOpts {
  /** Take a shared (read) lease instead of an exclusive one. */
  shared?: boolean
  /** Wait up to this many ms in the FIFO queue when the lock is held. */
  waitMs?: number
  /** A label shown by queries. */
  owner?: string
  /** Take the lock from its holders (their tokens become stale). */
  steal?: boolean
  /** Engine only: the client (connection) id the lease belongs to. */
  client?: number
  /** End the lease when its client disconnects. */
  ephemeral?: boolean
  /** Keep the lock unavailable this long after the lease lapses. */
  lockDelayMs?: number
}

/** The outcome of an acquire: `token` when granted, `waiter` when queued. */
export interface AcquireResult {
  /** Set when the lock is held now. */
  token?: number
  /** Set when the request waits in the queue. */
  waiter?: number
  /** The lease's deadline, or the wait's. */
  deadlineMs: number
}

/** An audit event as the host logs it. */
export interface AuditRecord {
  /** `auth_failed` or `stolen`. */
  kind: string
  /** One `key=value` line. */
  text: string
  /** The same as a JSON object. */
  json: string
}

/** Everything pending at once. */
export interface ClientDrain {
  /** Outputs, in order. */
  outputs: Array<ClientOutput>
  /** Replies, in order. */
  replies: Array<ClientReply>
  /** Events, in order (deliver them before the replies). */
  events: Array<ClientEvent>
  /** When `handleTimeout` is next due, in ms, or null. */
  timeoutMs?: number
}

/**
 * A lease event: `kind` is `lease_lost` (with `reason`: `lapsed`, `expired`, `stolen`,
 * `connection_closed` or `refused`) or `notice` (a server push, with `notice`).
 */
export interface ClientEvent {
  /** `lease_lost` or `notice`. */
  kind: string
  /** The lock. */
  name: string
  /** The lease's token. */
  token: number
  /** `lease_lost`: why, as a word. */
  reason?: string
  /** `lease_lost`: why, as a sentence. */
  description?: string
  /** `stolen`: the token that took the lock. */
  byToken?: number
  /** `refused`: the server's error. */
  refusal?: ErrorRecord
  /** `notice`: the notice's kind (`expired`, `stolen`). */
  notice?: string
}

/**
 * Something the host must do, in order: `connect` (open a transport for `conn` to endpoint
 * number `endpoint`, then report back), `transmit` (write `data`), `close`.
 */
export interface ClientOutput {
  /** `connect`, `transmit` or `close`. */
  kind: string
  /** The connection. */
  conn: number
  /** `connect`: the endpoint's index. */
  endpoint?: number
  /** `transmit`: the bytes. */
  data?: Buffer
}

/** The answer to a request: `error`, or one field typed by the request. */
export interface ClientReply {
  /** The request id. */
  id: number
  /** The request failed. */
  error?: ErrorRecord
  /** ACQUIRE granted. */
  granted?: GrantedRecord
  /** RENEW, VERIFY: ms left. */
  msLeft?: number
  /** RELEASE (and anything else answering OK). */
  ok?: boolean
  /** QUERY. */
  locks?: Array<LockRecord>
  /** A QUERY page's next cursor (empty after the last page). */
  cursor?: string
  /** INFO. */
  info?: Array<InfoRecord>
  /** PING. */
  pong?: Buffer
  /** A raw command's reply. */
  value?: RawValue
}

/** Settings of a client (all optional; the core's defaults otherwise). */
export interface ClientSettings {
  /** How many endpoints the host can connect to (a `connect` output names one by index). */
  endpoints?: number
  /**
   * The `host:port` of each endpoint, in index order, so that a cluster follower's
   * `-MOVED host:port` can name one (a `MOVED` elsewhere moves to the next endpoint).
   */
  addresses?: Array<string>
  /** Ask for RESP3 so the server can push lost-lease notices. */
  resp3?: boolean
  /** Longest a request may wait for its reply, in ms (a waiting acquire adds its wait). */
  requestTimeoutMs?: number
  /** Longest a connect may take, in ms. */
  connectTimeoutMs?: number
  /** User to authenticate every connection as (`default` when only a password is given). */
  username?: string
  /** Password to authenticate with (`HELLO 3 AUTH` or `AUTH`). */
  password?: string
}

/** Returns the core's constants. */
export declare function constants(): Constants

/** The constants of the core that hosts need. */
export interface Constants {
  /** Names of the files of a server's data directory, in the core's order. */
  dataFiles: Array<string>
  /** The version written into fence files. */
  fenceFileVersion: number
  /** The highest token the core issues (2^53-1). */
  maxToken: number
  /** The version written into snapshots. */
  snapshotVersion: number
  /** The version of this crate. */
  version: string
  /** The PBKDF2 iteration count `hashPassword` uses by default. */
  defaultIterations: number
}

/** Something to deliver: `kind` is `granted`, `wait_timed_out`, `expired` or `stolen`. */
export interface EngineEvent {
  /** The event's kind. */
  kind: string
  /** The lock. */
  name: string
  /** The lease's token (all but `wait_timed_out`). */
  token?: number
  /** The waiter (`granted`, `wait_timed_out`). */
  waiter?: number
  /** The client id given with the acquire. */
  client: number
  /** `granted`: the lease's deadline. */
  deadlineMs?: number
  /** `wait_timed_out`: how long it waited. */
  waitedMs?: number
  /** `expired`, `stolen`: the lease's owner label. */
  owner?: string
  /** `stolen`: the new holder's token. */
  byToken?: number
}

/** A core error as data. */
export interface ErrorRecord {
  /** Always true: marks a thrown value as a fencelock error record. */
  fencelock: boolean
  /** The stable wire code (`LOCKED`, `STALE`, ..., or a server's own code). */
  code: string
  /** The text after the code. */
  message: string
  /** `CODE message`, exactly the text of a wire error reply. */
  text: string
  /** `LOCKED` and `NOTREADY`: ms until the lock (or the server) frees up. */
  msLeft?: number
  /** `STALE` and `EXPIRED`: the token the request named. */
  token?: number
  /** `TIMEOUT`: how long the request waited. */
  waitedMs?: number
}

/** A key as etcd returned it; revisions are decimal strings. */
export interface EtcdKeyValue {
  /** The key. */
  key: Buffer
  /** The value (empty for a deletion). */
  value: Buffer
  /** The revision that created the key ("0" for a deletion). */
  createRevision: string
  /** The revision of the change. */
  modRevision: string
}

/** One batch an append writes unless its key exists already. */
export interface EtcdLogWrite {
  /** The batch's log key. */
  key: Buffer
  /** The encoded batch. */
  value: Buffer
}

/**
 * An etcd operation for the host to perform, by `kind`:
 * `grant_lease` (`ttlS`), `keep_alive` (`lease`, once), `revoke` (`lease`),
 * `campaign` (`key`, `value`, `lease`: `Txn(if create_revision(key) == 0 then put(key, value,
 * lease) else get(key))`), `append` (`electionKey`, `term`, `committedKey`, `batches`:
 * `Txn(if create_revision(electionKey) == term [and create_revision(committedKey) > 0] then
 * Txn(if create_revision(key) == 0 then put(key, value)) for each of `batches` in order)`,
 * and when `snapshotKey` is set also `put(snapshotKey, snapshot)` and the deletion of the keys
 * from `deleteFrom` up to `deleteEnd` (exclusive) in the same success branch),
 * `range` (`prefix`), `watch` (`prefix`, `startRevision`; every batch of events answers under
 * `id`) and `cancel_watch` (the watch `id`; no answer).
 */
export interface EtcdOpRecord {
  /** What to do (see above). */
  kind: string
  /** The operation's id: its result carries it back. */
  id: number
  /** `grant_lease`: the lease TTL in seconds. */
  ttlS?: number
  /** `keep_alive`, `revoke`, `campaign`: the lease id (decimal). */
  lease?: string
  /** `campaign`: the election key. */
  key?: Buffer
  /** `campaign`: this node's address. */
  value?: Buffer
  /** `append`: the election key. */
  electionKey?: Buffer
  /** `append`: the create revision of this leader's election key (decimal). */
  term?: string
  /**
   * `append`: the log key of the last batch known committed, which must exist (absent
   * before the log's first batch).
   */
  committedKey?: Buffer
  /** `append`: the batches to write, in index order, each only if its key does not exist. */
  batches?: Array<EtcdLogWrite>
  /** `range`, `watch`: the key prefix. */
  prefix?: Buffer
  /** `watch`: the first revision to deliver (decimal). */
  startRevision?: string
  /** `append` with a snapshot: the snapshot key. */
  snapshotKey?: Buffer
  /** `append` with a snapshot: the encoded snapshot. */
  snapshot?: Buffer
  /** `append` with a snapshot: the first log key to delete. */
  deleteFrom?: Buffer
  /** `append` with a snapshot: the end of the deleted range (exclusive). */
  deleteEnd?: Buffer
}

/** One change a watch saw. */
export interface EtcdWatchEvent {
  /** True for a put, false for a deletion (or a lease that ran out). */
  put: boolean
  /** The key and its revisions. */
  kv: EtcdKeyValue
}

/** The answer of a fence check. */
export interface FenceCheck {
  /** Whether the write may proceed. */
  accepted: boolean
  /** Whether the mark moved (the file must then be rewritten before the write). */
  advanced: boolean
  /** The mark after the check. */
  highest: number
}

/** One resource's high-water mark. */
export interface FenceMarkRecord {
  /** The resource. */
  resource: string
  /** The highest token accepted for it. */
  highest: number
}

/** A granted acquire: the token and the lease's conservative local deadline. */
export interface GrantedRecord {
  /** The fencing token. */
  token: number
  /** The local deadline, on the host's clock. */
  deadlineMs: number
}

/**
 * Returns the users-file hash of `password` (`pbkdf2-sha256$iterations$salt$key`); `salt`
 * must come from `crypto.randomBytes(16)`. Default iterations: `constants().defaultIterations`.
 */
export declare function hashPassword(password: Buffer, salt: Buffer, iterations?: number | undefined | null): string

/** One holder of a lock. */
export interface HolderRecord {
  /** The lease's token. */
  token: number
  /** `exclusive` or `shared`. */
  mode: string
  /** The owner label. */
  owner?: string
  /** ms until the lease lapses. */
  msLeft: number
  /** The client id. */
  client: number
}

/** One `key:value` line of an INFO reply. */
export interface InfoRecord {
  /** The section, lowercase. */
  section: string
  /** The key. */
  key: string
  /** The value as sent. */
  value: string
}

/** A tracked lease's status. */
export interface LeaseRecord {
  /** The conservative local deadline. */
  deadlineMs: number
  /** ms until it. */
  msLeft: number
  /** Whether the client renews it. */
  keptAlive: boolean
}

/** One lock, as a query lists it. */
export interface LockRecord {
  /** The lock's name. */
  name: string
  /** Who holds it. */
  holders: Array<HolderRecord>
  /** Who waits for it, in order. */
  waiters: Array<WaiterRecord>
  /** ms of lock-delay left. */
  delayMsLeft: number
}

/** Something the loop tells JavaScript, polled with `pollEvents`. */
export interface LoopEvent {
  /**
   * `audit` (log `text` or `json`), `log` (log `text` at `level`), `fatal` (log `text` as
   * critical and exit with status 3: a durable write failed) or `stopped` (the shutdown is
   * complete: `leases` live leases were kept or dropped).
   */
  kind: string
  /** The line to log. */
  text: string
  /** `audit`: the event as a JSON object. */
  json?: string
  /** `log`: `debug`, `info` or `warning`. */
  level?: string
  /** `stopped`: live leases after the shutdown. */
  leases?: number
}

/** What the loop's connections hold, for tests and diagnostics. */
export interface LoopStats {
  /** Open connections the core serves. */
  open: number
  /** Connections the core closed that still flush their last bytes (at most `CLOSE_LINGER`). */
  closing: number
  /** Connections not read from because their replies are not being read. */
  paused: number
  /** The most bytes held unsent for one connection. */
  maxHeldBytes: number
}

/**
 * Returns the system monotonic clock (`CLOCK_MONOTONIC`: system-wide, running since boot and
 * across process restarts) in whole ms, truncated. The server stores its lease horizon on this
 * clock; its own `performance.now()` is the same clock from another origin (libuv reads
 * `CLOCK_MONOTONIC` on Linux), which the tests check against this reading.
 */
export declare function monotonicMs(): number

/** A raw RESP value, tagged by its type: exactly one field is set (none for null). */
export interface RawValue {
  /** `+text`. */
  simple?: string
  /** An error reply. */
  error?: ErrorRecord
  /** `:n`. */
  integer?: number
  /** `$n` bulk string. */
  bulk?: Buffer
  /** Set (true) for a null. */
  null?: boolean
  /** RESP3 boolean. */
  boolean?: boolean
  /** RESP3 double. */
  double?: number
  /** RESP3 big number, as its digits. */
  big?: string
  /** Array (or set). */
  array?: Array<RawValue>
  /** RESP3 map, as `[key, value]` pairs in wire order. */
  map?: Array<Array<RawValue>>
  /** RESP3 push. */
  push?: Array<RawValue>
}

/** How a server started from its data directory. */
export interface RecoveryRecord {
  /** `fresh`, `crashed`, `clean` or `snapshot-refused`. */
  kind: string
  /** The line to log. */
  summary: string
  /** Whether grants wait for a restart grace. */
  hasGrace: boolean
  /**
   * How the restart grace was decided: `none`, `horizon`, `rebooted`, `no-boot-id`,
   * `no-horizon` or `stale-horizon`.
   */
  graceCase: string
  /** The restart grace decided at start, in ms. */
  graceMs: number
  /** Why a snapshot was refused. */
  refusal?: string
  /** File actions to perform, in order, before serving anyone. */
  actions: Array<ServerOutput>
}

/**
 * Deletes the file at `path` (if present) and makes the deletion durable; throws with the
 * system's reason on any failure.
 */
export declare function removeFileDurably(path: string): void

/**
 * One thing for the host to do, in order: `kind` is `write` (replace data-dir file `file`
 * with `data` atomically and durably before going on), `remove` (unlink `file`, fsync the
 * directory), `transmit` (write `data` to `conn`) or `close` (close `conn` after its
 * pending writes).
 */
export interface ServerOutput {
  /** `write`, `remove`, `transmit` or `close`. */
  kind: string
  /** `transmit`, `close`: the connection. */
  conn?: number
  /** `write`, `remove`: the data-directory file name. */
  file?: string
  /**
   * `write`: the bytes of the file. `transmit`: the bytes as a Latin-1 string (one
   * character per byte), to write with the `'latin1'` encoding.
   */
  data?: Buffer | string
}

/** The engine's counters. */
export interface StatsRecord {
  acquires: number
  grants: number
  grantsAfterWait: number
  releases: number
  renewals: number
  expiries: number
  steals: number
  staleRejections: number
  waitTimeouts: number
  totalWaitMs: number
  horizonWrites: number
}

/** Returns true when `password` matches a `hashPassword` hash. */
export declare function verifyPassword(hash: string, password: Buffer): boolean

/** One waiter of a lock (`position` 1 is the head). */
export interface WaiterRecord {
  /** The waiter id. */
  waiter: number
  /** Its place in the queue. */
  position: number
  /** `exclusive` or `shared`. */
  mode: string
  /** The owner label. */
  owner?: string
  /** The client id. */
  client: number
  /** ms until the wait ends. */
  msLeft: number
}

/**
 * Replaces the file at `path` with `data` atomically and durably; throws with the system's
 * reason on any failure.
 */
export declare function writeFileDurably(path: string, data: Buffer): void
