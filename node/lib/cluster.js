'use strict';
// `fencelock serve --etcd URLS --cluster NAME`: the `net` I/O loop of a cluster node.
//
// The core's `ClusterNode` (`NativeCluster`) holds every rule of replication: what to log,
// when a reply may leave, who leads, when to step down. This file only performs the etcd
// operations it emits (through the `etcd3` client, an optional dependency) and reports their
// results, moves bytes and time, and arms one timer. See docs/CLUSTER.md.

const native = require('./native');
const { translate } = require('./errors');
const { settings } = require('./options');
const { silent } = require('./log');
const { IoLoop, closed, delay } = require('./io_loop');
const { tlsOptions, checkExposure } = require('./io_loop');

const { version: VERSION } = native.constants();
const EXIT_FATAL = 3;
/** Milliseconds an etcd call may take before its outcome counts as unknown. */
const ETCD_TIMEOUT_MS = 5000;

/**
 * One listening socket, its connections, and the native cluster node they share.
 *
 * Options: `etcd` (endpoint URLs, e.g. `['http://127.0.0.1:2379']`), `cluster` (name),
 * `advertise` ('HOST:PORT' clients reach this node at), `host` (127.0.0.1), `port` (7380),
 * `electionTtlS` (2), `snapshotEvery` (1000: every N log batches the leader also stores a
 * snapshot and deletes the log before it), `pipelineDepth` (1: log appends the leader keeps in
 * flight at once), `maxConnections` (10000), `readyFile`, `maxTtlMs`,
 * `lockDelayMs`, `maxLockDelayMs`, `log` (a logger), `onFatal`.
 */
class ClusterServer extends IoLoop {
  constructor(options) {
    super();
    this.options = {
      host: '127.0.0.1',
      port: 7380,
      cluster: 'default',
      electionTtlS: 2,
      snapshotEvery: 1000,
      pipelineDepth: 1,
      maxConnections: 10000,
      tlsHandshakeTimeoutMs: 10000,
      ...options,
    };
    if (this.options.tlsHandshakeTimeoutMs === undefined) this.options.tlsHandshakeTimeoutMs = 10000;
    this.tls = tlsOptions(this.options);
    this.log = options.log ?? silent;
    this.onFatal = options.onFatal ?? ((status) => process.exit(status));
    this.stopped = null;
    // Operations in flight (their promises), and open watches by operation id.
    this.calls = new Set();
    this.watches = new Map();
    this.etcd = etcdClient(this.options.etcd);
    const engine = settings({
      maxTtlMs: this.options.maxTtlMs,
      lockDelayMs: this.options.lockDelayMs,
      maxLockDelayMs: this.options.maxLockDelayMs,
    });
    const server = settings({ maxConnections: this.options.maxConnections });
    this.advertise = this.options.advertise ?? `${this.options.host}:${this.options.port}`;
    this.native = construct(() => new native.NativeCluster(
      this.options.cluster,
      this.advertise,
      this.options.electionTtlS,
      engine,
      server,
      this.nowMs(),
      this.options.snapshotEvery,
      this.options.pipelineDepth,
    ));
    this.loadAuth();
  }

  /** Binds the socket and starts the node's etcd operations; resolves to the bound `{ host, port }`. */
  async listen() {
    const { host, port } = await this.bind(this.createListener(), this.options.host, this.options.port);
    if (this.options.metrics) await this.listenMetrics(this.options.metrics);
    this.log.info(
      `fencelock ${VERSION} cluster '${this.options.cluster}' node ${this.advertise} ` +
        `serving on ${host}:${port}${this.tlsNote()} (etcd ${this.options.etcd.map((url) => url.replace(/^http:\/\//, '')).join(',')}, ` +
        `election TTL ${this.options.electionTtlS} s, node ${process.version})`,
    );
    if (this.metricsAddress) this.log.info(`metrics on http://${this.metricsAddress.host}:${this.metricsAddress.port}/metrics`);
    this.writeReady(host, port);
    this.flush();
    return this.address;
  }

  /** Stops accepting, closes every connection and revokes the election lease (another node leads at once). */
  stop() {
    if (this.stopped !== null) return this.stopped;
    this.stopping = true;
    this.stopped = (async () => {
      this.stopListening();
      this.native.shutdown(this.nowMs());
      this.flush(); // closes connections and starts the lease revoke
      await Promise.race([Promise.allSettled([...this.calls]), delay(2000)]);
      for (const id of [...this.watches.keys()]) this.cancelWatch(id);
      const closing = [...this.sockets.values()].map((socket) => closed(socket));
      for (const socket of this.sockets.values()) socket.end();
      this.sockets.clear();
      await Promise.race([Promise.all(closing), delay(1000)]);
      this.etcd.close();
    })();
    return this.stopped;
  }

  // -- outputs ---------------------------------------------------------------------------

  /** Performs every pending output and etcd operation, then re-arms the timer. */
  flush() {
    for (const output of this.native.drain()) {
      if (!this.transmitOrClose(output)) {
        // An output this host does not know may be a barrier: stop rather than guess.
        this.log.critical(`unknown cluster output ${JSON.stringify(output.kind)}: update the host; exiting`);
        this.onFatal(EXIT_FATAL);
        return;
      }
    }
    for (const op of this.native.drainEtcd()) this.start(op);
    this.logRole();
    this.drainAudit();
    if (!this.stopping) this.schedule();
  }

  /** One log line whenever the node's role or the leader it knows changes. */
  logRole() {
    const role = this.native.role();
    const leader = this.native.leader() ?? null;
    if (this.seenRole !== undefined && this.seenRole.role === role && this.seenRole.leader === leader) return;
    this.seenRole = { role, leader };
    const cluster = `'${this.options.cluster}'`;
    if (role === 'leader') this.log.info(`cluster ${cluster}: this node leads (log index ${this.native.logIndex()})`);
    else if ((role === 'follower' || role === 'candidate') && leader) this.log.info(`cluster ${cluster}: ${role}, the leader is ${leader}`);
    else this.log.info(`cluster ${cluster}: ${role}, no leader known`);
  }

  start(op) {
    if (op.kind === 'cancel_watch') {
      this.cancelWatch(op.id);
      return;
    }
    if (op.kind === 'watch') {
      this.watch(op);
      return;
    }
    const call = this.perform(op);
    this.calls.add(call);
    call.finally(() => this.calls.delete(call));
  }

  async perform(op) {
    let report;
    try {
      report = await this.call(op);
    } catch (error) {
      // Every failure is an unknown outcome; the core decides what follows.
      this.log.warning(`etcd ${op.kind} failed: ${error.message}`);
      this.native.failed(this.nowMs(), op.id, `${error.name}: ${error.message}`);
      this.flush();
      return;
    }
    report(this.nowMs());
    this.flush();
  }

  /** Performs one operation; resolves to the call that reports its result to the core. */
  async call(op) {
    const { id } = op;
    const cluster = this.native;
    const etcd = this.etcd;
    switch (op.kind) {
      case 'grant_lease': {
        const granted = await etcd.leaseClient.leaseGrant({ TTL: op.ttlS });
        return (now) => cluster.leaseGranted(now, id, String(granted.ID));
      }
      case 'keep_alive': {
        const reply = await keepAliveOnce(etcd, op.lease);
        return (now) => cluster.keepAlive(now, id, String(reply.TTL));
      }
      case 'revoke': {
        await etcd.leaseClient.leaseRevoke({ ID: op.lease });
        return (now) => cluster.done(now, id);
      }
      case 'campaign': {
        const reply = await etcd.kv.txn({
          compare: [{ key: op.key, target: 'Create', result: 'Equal', create_revision: '0' }],
          success: [{ request_put: { key: op.key, value: op.value, lease: op.lease } }],
          failure: [{ request_range: { key: op.key } }],
        });
        let leader;
        if (reply.succeeded) {
          // The transaction's revision created the key: it is this node's term.
          const revision = String(reply.header.revision);
          leader = { key: op.key, value: op.value, createRevision: revision, modRevision: revision };
        } else {
          const found = reply.responses[0]?.response_range?.kvs?.[0];
          leader = found ? keyValue(found) : { key: op.key, value: Buffer.alloc(0), createRevision: '0', modRevision: '0' };
        }
        return (now) => cluster.campaignResult(now, id, Boolean(reply.succeeded), leader);
      }
      case 'append': {
        // Each batch is put only if etcd does not have it yet (appends in flight together
        // carry the same batches, and etcd may apply them in any order).
        const success = op.batches.map(({ key, value }) => ({
          request_txn: {
            compare: [{ key, target: 'Create', result: 'Equal', create_revision: '0' }],
            success: [{ request_put: { key, value } }],
            failure: [],
          },
        }));
        if (op.snapshotKey) {
          // The snapshot and the deletion of the log before it commit with the batch.
          success.push(
            { request_put: { key: op.snapshotKey, value: op.snapshot } },
            { request_delete_range: { key: op.deleteFrom, range_end: op.deleteEnd } },
          );
        }
        const compare = [{ key: op.electionKey, target: 'Create', result: 'Equal', create_revision: op.term }];
        if (op.committedKey) {
          compare.push({ key: op.committedKey, target: 'Create', result: 'Greater', create_revision: '0' });
        }
        const reply = await etcd.kv.txn({ compare, success, failure: [] });
        const revision = reply.succeeded ? String(reply.header.revision) : '0';
        return (now) => cluster.appendResult(now, id, Boolean(reply.succeeded), revision);
      }
      case 'range': {
        const reply = await etcd.kv.range({ key: op.prefix, range_end: prefixEnd(op.prefix) });
        const kvs = reply.kvs.map(keyValue);
        const revision = String(reply.header.revision);
        return (now) => cluster.rangeResult(now, id, revision, kvs);
      }
      default:
        throw new Error(`unknown etcd operation ${JSON.stringify(op.kind)}`);
    }
  }

  /** Opens a watch; every batch of events goes to the core under the operation's id. */
  watch(op) {
    const { id } = op;
    // `watcher()` rather than `create()`: the listeners are attached before the stream opens,
    // so no event can be emitted before they are (create() resolves a turn after 'connected').
    const watcher = this.etcd.watch().prefix(op.prefix).startRevision(op.startRevision).watcher();
    this.watches.set(id, watcher);
    watcher.on('data', (response) => {
      if (this.watches.get(id) !== watcher || response.events.length === 0) return;
      const events = response.events.map((event) => ({ put: event.type === 'Put', kv: keyValue(event.kv) }));
      this.native.events(this.nowMs(), id, events);
      this.flush();
    });
    // etcd3 would reconnect and resume the watch itself; the core reads the log again instead,
    // as after any failed watch, so that nothing depends on how a resumed watch starts.
    watcher.on('disconnected', (error) => this.watchFailed(id, watcher, error));
    watcher.on('error', (error) => this.watchFailed(id, watcher, error));
    watcher.on('end', () => this.watchFailed(id, watcher, new Error('watch ended')));
  }

  watchFailed(id, watcher, error) {
    if (this.watches.get(id) !== watcher) return;
    this.cancelWatch(id);
    this.log.warning(`etcd watch failed: ${error.message}`);
    this.native.failed(this.nowMs(), id, `${error.name}: ${error.message}`);
    this.flush();
  }

  cancelWatch(id) {
    const watcher = this.watches.get(id);
    if (watcher === undefined) return;
    this.watches.delete(id);
    watcher.cancel().catch(() => {
      // The stream is gone already: nothing to cancel.
    });
  }
}

/**
 * Serves a cluster node until SIGTERM or SIGINT, then hands leadership over; resolves to the
 * exit status.
 */
async function serveCluster(options) {
  const log = options.log ?? silent;
  let server;
  try {
    server = new ClusterServer(options);
  } catch (error) {
    log.error(error.message);
    return 1;
  }
  // Before the socket (and the ready file): a SIGHUP sent once the server is up must never
  // meet Node's default action, which ends the process.
  const reload = () => server.reloadUsers();
  process.on('SIGHUP', reload);
  try {
    await server.listen();
  } catch (error) {
    log.error(`cannot serve: ${error.message}`);
    server.etcd.close();
    process.off('SIGHUP', reload);
    return 1;
  }
  await new Promise((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  process.off('SIGHUP', reload);
  await server.stop();
  return 0;
}

/**
 * Checks the options of `fencelock serve --etcd ...` and returns the etcd endpoint URLs.
 * Users, TLS and metrics work as on a single server, and so does protected mode. Throws an Error with `code`
 * `PROTECTED_MODE` or `BAD_ETCD_ENDPOINT`.
 */
function checkClusterOptions(options, log = silent) {
  // Protected mode, as on a single server: a non-loopback address needs users or --no-auth.
  checkExposure({ ...options, host: options.host ?? '127.0.0.1' }, log);
  return parseEndpoints(options.etcd);
}

/** Splits `http://h:p,http://h:p` (or `h:p,...`) into `http://host:port` URLs. */
function parseEndpoints(text) {
  const endpoints = [];
  for (const part of String(text ?? '').split(',').map((item) => item.trim()).filter(Boolean)) {
    let url;
    try {
      url = new URL(part.includes('://') ? part : `http://${part}`);
    } catch {
      throw coded(`fencelock: bad etcd endpoint ${JSON.stringify(part)}`, 'BAD_ETCD_ENDPOINT');
    }
    if (url.protocol !== 'http:') {
      throw coded(`fencelock: etcd endpoint ${JSON.stringify(part)}: only http:// is supported (no TLS to etcd yet)`, 'BAD_ETCD_ENDPOINT');
    }
    if (!url.hostname) throw coded(`fencelock: bad etcd endpoint ${JSON.stringify(part)}`, 'BAD_ETCD_ENDPOINT');
    endpoints.push(`http://${url.hostname}:${url.port || 2379}`);
  }
  if (endpoints.length === 0) throw coded('fencelock: no etcd endpoint given', 'BAD_ETCD_ENDPOINT');
  return endpoints;
}

// -- etcd ------------------------------------------------------------------------------------

/** Creates the etcd3 client: every call tried once (the core decides on retries), each bounded. */
function etcdClient(hosts) {
  let Etcd3;
  try {
    ({ Etcd3 } = require('etcd3'));
  } catch (error) {
    if (error.code !== 'MODULE_NOT_FOUND') throw error;
    throw coded(
      "fencelock: cluster mode needs the etcd client: npm install etcd3 (an optional dependency of fencelock)",
      'ETCD_CLIENT_MISSING',
    );
  }
  return new Etcd3({
    hosts,
    // A retried transaction could apply twice or report the second try's compare: the core
    // treats any failure as an unknown outcome and decides what to do, so call once.
    faultHandling: { global: { execute: (fn) => fn() } },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + ETCD_TIMEOUT_MS }),
  });
}

/** Sends one keep-alive for `lease` and resolves to etcd's answer (its `TTL` is 0 once the lease is gone). */
async function keepAliveOnce(etcd, lease) {
  const stream = await etcd.leaseClient.leaseKeepAlive();
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('keep-alive timed out')), ETCD_TIMEOUT_MS);
      stream.on('data', (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      stream.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      stream.on('end', () => {
        clearTimeout(timer);
        reject(new Error('keep-alive stream ended'));
      });
      stream.write({ ID: lease });
    });
  } finally {
    stream.end();
  }
}

/** The end of the key range of every key that starts with `prefix`. */
function prefixEnd(prefix) {
  const end = Buffer.from(prefix);
  for (let index = end.length - 1; index >= 0; index -= 1) {
    if (end[index] < 0xff) {
      end[index] += 1;
      return end.subarray(0, index + 1);
    }
  }
  // Every byte is 0xff: the range runs to the end of the keyspace.
  return Buffer.from([0]);
}

function keyValue(kv) {
  return {
    key: kv.key,
    value: kv.value ?? Buffer.alloc(0),
    createRevision: String(kv.create_revision ?? '0'),
    modRevision: String(kv.mod_revision ?? '0'),
  };
}

function coded(message, code) {
  const error = new Error(message);
  error.code = code;
  return error;
}

function construct(build) {
  try {
    return build();
  } catch (error) {
    throw translate(error);
  }
}

module.exports = { ClusterServer, serveCluster, checkClusterOptions, parseEndpoints };
