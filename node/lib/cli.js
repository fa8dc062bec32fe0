'use strict';
// The `fencelock` command: run a server, or talk to one. Same subcommands, flags, defaults
// and help as the Python CLI (python/fencelock/cli.py): client subcommands take durations in
// seconds; server flags keep the `-ms` names of the wire and the other hosts.

const { parseArgs } = require('node:util');
const { spawn } = require('node:child_process');
const {
  FencelockError, ConnectionLost, LeaseLost,
} = require('./errors');

const EXIT_ERROR = 1;
const EXIT_USAGE = 2;
const EXIT_LOST = 75; // EX_TEMPFAIL: the lease was lost while the command ran
const EXIT_UNAVAILABLE = 69; // EX_UNAVAILABLE: no server

class UsageError extends Error {}

const CLIENT_FLAGS = [
  ['host', { type: 'string', default: '127.0.0.1', meta: 'HOST', help: 'server address (default 127.0.0.1)' }],
  ['port', { type: 'string', default: '7380', meta: 'PORT', help: 'server port (default 7380)', parse: integer }],
  ['tls', { type: 'boolean', help: "connect with TLS (verified against the system's CAs, or --tls-ca)" }],
  ['tls-ca', { type: 'string', meta: 'FILE', help: 'trust the server certificate this CA signed (PEM); implies --tls' }],
  ['tls-cert', { type: 'string', meta: 'FILE', help: 'present this client certificate (PEM), with --tls-key' }],
  ['tls-key', { type: 'string', meta: 'FILE', help: 'the private key of --tls-cert (PEM)' }],
  ['user', { type: 'string', meta: 'USER', help: "user to authenticate as (default 'default'; or FENCELOCK_USER)" }],
  ['password', { type: 'string', meta: 'PASSWORD', help: "password (better: FENCELOCK_PASSWORD, which 'ps' does not show)" }],
];

const COMMANDS = {
  serve: {
    help: 'run the lock server (node net; RESP2/RESP3 on TCP)',
    description: 'Run the fencelock server. Speaks RESP2/RESP3, so redis-cli and Redis client\nlibraries can talk to it.',
    flags: [
      ['host', { type: 'string', default: '127.0.0.1', meta: 'HOST', help: 'address to bind (default 127.0.0.1)' }],
      ['port', { type: 'string', default: '7380', meta: 'PORT', help: 'port to bind, 0 for any free port (default 7380)', parse: integer }],
      ['data-dir', { type: 'string', meta: 'DIR', help: 'directory for the token ceiling and the clean-shutdown snapshot (default ./.fencelock)' }],
      ['in-memory', { type: 'boolean', help: 'keep nothing on disk (tokens restart after a restart: for tests only)' }],
      ['max-ttl-ms', { type: 'string', meta: 'N', help: 'longest lease a client may ask for (default 300000 = 5 min; with --max-lock-delay-ms, the restart grace after a crash when no lease horizon can be trusted)', parse: positive }],
      ['lock-delay-ms', { type: 'string', meta: 'N', help: 'lock-delay after a lease expires (default 0 = off)', parse: nonNegative }],
      ['max-lock-delay-ms', { type: 'string', meta: 'N', help: 'longest lock-delay a client may ask for (default 60000; 0 if no client asks for one: the restart grace without a trusted lease horizon is --max-ttl-ms plus this)', parse: nonNegative }],
      ['token-block', { type: 'string', meta: 'N', help: 'tokens reserved per durable write of the token ceiling (default 1048576)', parse: positive }],
      ['horizon-slack-ms', { type: 'string', meta: 'N', help: 'how far past a lease deadline each durable lease horizon reaches: about one fsync per N ms under load, and a crash restart waits at most N ms past the last deadline (default 5000)', parse: nonNegative }],
      ['max-connections', { type: 'string', default: '10000', meta: 'N', help: 'connection cap; extra connections get an error and are closed (default 10000)', parse: positive }],
      ['test-clock', { type: 'boolean', help: "use a manual clock moved by 'DEBUG ADVANCE ms' (tests only)" }],
      ['log-level', { type: 'string', default: 'info', meta: '{debug,info,warning,error}', choices: ['debug', 'info', 'warning', 'error'], help: 'log level (default info)' }],
      ['ready-file', { type: 'string', meta: 'PATH', help: "once listening, write 'HOST PORT' to this file (handy with --port 0)" }],
      ['tls-cert', { type: 'string', meta: 'FILE', help: 'serve TLS with this certificate chain (PEM); needs --tls-key' }],
      ['tls-key', { type: 'string', meta: 'FILE', help: 'the private key of --tls-cert (PEM)' }],
      ['tls-ca', { type: 'string', meta: 'FILE', help: 'require client certificates signed by this CA (PEM)' }],
      ['tls-handshake-timeout-ms', { type: 'string', default: '10000', meta: 'N', help: 'close a TLS connection whose handshake is not done after N ms (default 10000)', parse: positive }],
      ['metrics', { type: 'string', meta: 'HOST:PORT', help: 'serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9380)' }],
      ['users', { type: 'string', meta: 'FILE', help: "users file (JSON: names, password hashes from 'fencelock hash-password', lock-name prefix rules); reloaded on SIGHUP" }],
      ['requirepass', { type: 'string', meta: 'PASSWORD', help: "one password for a single user 'default' with every right (or set FENCELOCK_REQUIREPASS, which 'ps' does not show)" }],
      ['no-auth', { type: 'boolean', help: 'serve a non-loopback address without authentication anyway (protected mode refuses otherwise)' }],
      ['log-format', { type: 'string', default: 'text', meta: '{text,json}', choices: ['text', 'json'], help: 'log lines as text or as one JSON object each (default text)' }],
      // Cluster mode (replicated through etcd; see docs/CLUSTER.md).
      ['etcd', { type: 'string', meta: 'URLS', help: 'cluster mode: etcd endpoints, comma-separated (e.g. http://127.0.0.1:2379): run as a node of a cluster' }],
      ['cluster', { type: 'string', default: 'default', meta: 'NAME', help: 'cluster mode: cluster name: its keys live under /fencelock/NAME/ (default default)' }],
      ['advertise', { type: 'string', meta: 'HOST:PORT', help: 'cluster mode: address clients reach this node at, sent in MOVED (default HOST:PORT)' }],
      ['election-ttl', { type: 'string', default: '2', meta: 'S', help: 'cluster mode: election lease TTL in seconds: a dead leader is replaced after about this long; raise it where a node can stall longer (default 2)', parse: positive }],
      ['pipeline-depth', { type: 'string', default: '1', meta: 'N', help: 'cluster mode: the leader keeps up to N log appends in flight to etcd at once (default 1: one at a time)', parse: positive }],
      ['snapshot-every', { type: 'string', default: '1000', meta: 'N', help: 'cluster mode: every N log batches the leader also stores a snapshot of the lock state and deletes the log before it (default 1000)', parse: positive }],
    ],
    positionals: [],
    handler: serveCommand,
  },
  'hash-password': {
    help: 'print a password hash for a users file',
    description: 'Read a password (from stdin) and print its users-file hash\n(PBKDF2-HMAC-SHA256 with a random salt).',
    flags: [['iterations', { type: 'string', meta: 'N', help: 'PBKDF2 iterations (default 100000; fewer only for tests)', parse: positive }]],
    positionals: [],
    local: true,
    handler: hashPasswordCommand,
  },
  acquire: {
    help: 'take a lease and print its fencing token',
    flags: [
      ...CLIENT_FLAGS,
      ['wait', { type: 'string', meta: 'SECONDS', help: 'wait up to this long for the lock (default: fail at once if held)', parse: seconds }],
      ['shared', { type: 'boolean', help: 'take a shared lease (readers)' }],
      ['steal', { type: 'boolean', help: 'take the lock even if held; the old holder is fenced off' }],
      ['owner', { type: 'string', meta: 'OWNER', help: "a label shown by 'query'" }],
      ['lock-delay', { type: 'string', meta: 'SECONDS', help: 'if this lease expires instead of being released, keep the lock from being granted again for this long', parse: seconds }],
    ],
    positionals: [['name', 'lock name'], ['ttl', 'lease length in seconds', seconds]],
    handler: async (client, args) => {
      const lease = await client.acquire(args.name, {
        ttl: args.ttl, wait: args.wait, shared: args.shared, steal: args.steal, owner: args.owner, lockDelay: args['lock-delay'],
      });
      print(String(lease.token));
    },
  },
  renew: {
    help: 'extend a lease; prints seconds left',
    flags: CLIENT_FLAGS,
    positionals: [['name', ''], ['token', '', integer], ['ttl', 'new lease length in seconds from now', seconds]],
    handler: async (client, args) => print((await client.renew(args.name, args.token, args.ttl) / 1000).toFixed(3)),
  },
  release: {
    help: 'release a lease',
    flags: CLIENT_FLAGS,
    positionals: [['name', ''], ['token', '', integer]],
    handler: async (client, args) => {
      await client.release(args.name, args.token);
      print('OK');
    },
  },
  verify: {
    help: 'check a lease; prints seconds left (exit 1 if not live)',
    flags: CLIENT_FLAGS,
    positionals: [['name', ''], ['token', '', integer]],
    handler: async (client, args) => print((await client.verify(args.name, args.token) / 1000).toFixed(3)),
  },
  query: {
    help: 'list locks with their holders and waiters',
    flags: [...CLIENT_FLAGS, ['json', { type: 'boolean', help: 'print JSON' }]],
    positionals: [['prefix?', 'only locks whose name starts with this']],
    handler: async (client, args) => {
      const locks = await client.query(args.prefix ?? '');
      if (args.json) return print(JSON.stringify(locks, null, 2));
      if (locks.length === 0) print('(no locks)');
      for (const lock of locks) {
        print(`${lock.name}${lock.delayMsLeft ? `  lock-delay ${lock.delayMsLeft} ms` : ''}`);
        for (const h of lock.holders) print(`  holder token=${h.token} ${h.mode} ${h.msLeft} ms left${h.owner ? ` owner=${h.owner}` : ''}`);
        for (const w of lock.waiters) print(`  waiter #${w.position} ${w.mode} ${w.msLeft} ms left${w.owner ? ` owner=${w.owner}` : ''}`);
      }
      return undefined;
    },
  },
  info: {
    help: 'print server facts and counters',
    flags: [...CLIENT_FLAGS, ['json', { type: 'boolean', help: 'print JSON' }]],
    positionals: [],
    handler: async (client, args) => {
      const facts = await client.info();
      if (args.json) print(JSON.stringify(facts, null, 2));
      else for (const [k, v] of Object.entries(facts)) print(`${k}:${v}`);
    },
  },
  run: {
    help: 'hold a lock (auto-renewed) while a command runs: fencelock run NAME [options] -- COMMAND...; its token is in $FENCELOCK_TOKEN',
    flags: [
      ...CLIENT_FLAGS,
      ['ttl', { type: 'string', default: '30', meta: 'TTL', help: 'lease length in seconds (default 30.0)', parse: seconds }],
      ['wait', { type: 'string', meta: 'SECONDS', help: 'wait up to this long for the lock', parse: seconds }],
      ['shared', { type: 'boolean', help: '' }],
      ['lock-delay', { type: 'string', meta: 'SECONDS', help: 'if the lease expires (the command hung past renewals), keep the lock from being granted again for this long', parse: seconds }],
    ],
    positionals: [['name', '']],
    handler: runCommand,
  },
};

const EPILOG = `Examples:
  fencelock serve --data-dir ./.fencelock
  TOKEN=$(fencelock acquire jobs/nightly 30 --wait 5)
  fencelock release jobs/nightly $TOKEN
  fencelock run jobs/nightly --ttl 30 -- ./nightly.sh   # token in $FENCELOCK_TOKEN`;

/** Runs the CLI with `argv` (without node and the script) and resolves to the exit status. */
async function main(argv = process.argv.slice(2)) {
  let words = [...argv];
  let trailing = [];
  const cut = words.indexOf('--');
  if (cut >= 0) {
    trailing = words.slice(cut + 1);
    words = words.slice(0, cut);
  }
  const [name, ...rest] = words;
  if (name === undefined || name === '-h' || name === '--help') {
    print(mainHelp());
    return name === undefined ? EXIT_USAGE : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) return usage(`fencelock: error: argument COMMAND: invalid choice: '${name}' (choose from ${Object.keys(COMMANDS).map((c) => `'${c}'`).join(', ')})`);
  if (rest.includes('-h') || rest.includes('--help')) {
    print(commandHelp(name, command));
    return 0;
  }
  let args;
  try {
    if (trailing.length > 0 && name !== 'run') throw new UsageError('only \'run\' takes a command after --');
    args = parse(command, rest);
  } catch (error) {
    if (error instanceof UsageError || error.code?.startsWith?.('ERR_PARSE_ARGS')) {
      return usage(`fencelock ${name}: error: ${error.message}`);
    }
    throw error;
  }
  args.command = trailing;
  if (name === 'serve' || command.local) return command.handler(args);
  const { Client } = require('./client');
  const password = args.password ?? (process.env.FENCELOCK_PASSWORD || undefined);
  const username = args.user ?? (process.env.FENCELOCK_USER || undefined);
  const client = new Client({ host: args.host, port: args.port, tls: cliTls(args), username, password });
  try {
    return (await command.handler(client, args)) ?? 0;
  } catch (error) {
    if (error instanceof ConnectionLost) {
      process.stderr.write(`fencelock: ${error.detail}\n`);
      return EXIT_UNAVAILABLE;
    }
    if (error instanceof LeaseLost) {
      process.stderr.write(`fencelock: ${error.detail}\n`);
      return EXIT_LOST;
    }
    if (error instanceof FencelockError) {
      process.stderr.write(`fencelock: ${error.message}\n`);
      return EXIT_ERROR;
    }
    if (error instanceof UsageError || error instanceof RangeError || error instanceof TypeError) {
      process.stderr.write(`fencelock: ${error.message}\n`);
      return EXIT_USAGE;
    }
    throw error;
  } finally {
    await client.close();
  }
}

function parse(command, words) {
  const options = {};
  for (const [flag, spec] of command.flags) {
    options[flag] = { type: spec.type };
    if (spec.default !== undefined) options[flag].default = spec.default;
  }
  const { values, positionals } = parseArgs({ args: words, options, allowPositionals: true, strict: true });
  const args = {};
  for (const [flag, spec] of command.flags) {
    let value = values[flag];
    if (value !== undefined && spec.parse) value = spec.parse(value, `--${flag}`);
    if (value !== undefined && spec.choices && !spec.choices.includes(value)) {
      throw new UsageError(`argument --${flag}: invalid choice: '${value}' (choose from ${spec.choices.map((c) => `'${c}'`).join(', ')})`);
    }
    args[flag] = spec.type === 'boolean' ? Boolean(value) : value;
  }
  const wanted = command.positionals;
  const required = wanted.filter(([p]) => !p.endsWith('?'));
  if (positionals.length < required.length) {
    throw new UsageError(`the following arguments are required: ${required.slice(positionals.length).map(([p]) => p).join(', ')}`);
  }
  if (positionals.length > wanted.length) throw new UsageError(`unrecognized arguments: ${positionals.slice(wanted.length).join(' ')}`);
  wanted.forEach(([p, , convert], index) => {
    const key = p.replace('?', '');
    const value = positionals[index];
    args[key] = value !== undefined && convert ? convert(value, key) : value;
  });
  if (command === COMMANDS.serve && args['data-dir'] !== undefined && args['in-memory']) {
    throw new UsageError('argument --in-memory: not allowed with argument --data-dir');
  }
  if (command === COMMANDS.serve && args.users !== undefined && args.requirepass !== undefined) {
    throw new UsageError('argument --requirepass: not allowed with argument --users');
  }
  return args;
}

/** Returns the client's `tls` option from the client flags (files read here), or undefined. */
function cliTls(args) {
  if (Boolean(args['tls-cert']) !== Boolean(args['tls-key'])) throw new UsageError('--tls-cert and --tls-key go together');
  if (!args.tls && !args['tls-ca'] && !args['tls-cert']) return undefined;
  const fs = require('node:fs');
  const options = {};
  if (args['tls-ca']) options.ca = fs.readFileSync(args['tls-ca']);
  if (args['tls-cert']) Object.assign(options, { cert: fs.readFileSync(args['tls-cert']), key: fs.readFileSync(args['tls-key']) });
  return Object.keys(options).length ? options : true;
}

async function serveCommand(args) {
  if (args.etcd !== undefined) return serveClusterCommand(args);
  const { logger } = require('./log');
  const { serve } = require('./server');
  const engine = {};
  if (args['token-block'] !== undefined) engine.tokenBlock = args['token-block'];
  if (args['horizon-slack-ms'] !== undefined) engine.horizonSlackMs = args['horizon-slack-ms'];
  if (args['max-lock-delay-ms'] !== undefined) engine.maxLockDelayMs = args['max-lock-delay-ms'];
  return serve({
    host: args.host,
    port: args.port,
    dataDir: args['in-memory'] ? null : args['data-dir'] ?? '.fencelock',
    maxTtlMs: args['max-ttl-ms'],
    lockDelayMs: args['lock-delay-ms'],
    maxConnections: args['max-connections'],
    testClock: args['test-clock'],
    readyFile: args['ready-file'],
    tlsCert: args['tls-cert'],
    tlsKey: args['tls-key'],
    tlsCa: args['tls-ca'],
    tlsHandshakeTimeoutMs: args['tls-handshake-timeout-ms'],
    metrics: args.metrics,
    engine,
    usersFile: args.users,
    requirepass: args.requirepass ?? (args.users === undefined ? process.env.FENCELOCK_REQUIREPASS || undefined : undefined),
    noAuth: args['no-auth'],
    log: logger('fencelock.server', args['log-level'], args['log-format']),
  });
}

/** `serve --etcd`: a node of a cluster (docs/CLUSTER.md); refuses what cluster mode lacks. */
async function serveClusterCommand(args) {
  const { logger } = require('./log');
  const log = logger('fencelock.cluster', args['log-level'], args['log-format']);
  const { serveCluster, checkClusterOptions } = require('./cluster');
  const options = {
    host: args.host,
    port: args.port,
    tlsCert: args['tls-cert'],
    tlsKey: args['tls-key'],
    tlsCa: args['tls-ca'],
    metrics: args.metrics,
    usersFile: args.users,
    requirepass: args.requirepass ?? (args.users === undefined ? process.env.FENCELOCK_REQUIREPASS || undefined : undefined),
    noAuth: args['no-auth'],
  };
  let etcd;
  try {
    etcd = checkClusterOptions({ ...options, etcd: args.etcd }, log);
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    return error.code === 'BAD_ETCD_ENDPOINT' ? EXIT_USAGE : EXIT_ERROR;
  }
  return serveCluster({
    etcd,
    cluster: args.cluster,
    advertise: args.advertise ?? `${args.host}:${args.port}`,
    host: args.host,
    port: args.port,
    electionTtlS: args['election-ttl'],
    snapshotEvery: args['snapshot-every'],
    pipelineDepth: args['pipeline-depth'],
    maxConnections: args['max-connections'],
    readyFile: args['ready-file'],
    maxTtlMs: args['max-ttl-ms'],
    lockDelayMs: args['lock-delay-ms'],
    maxLockDelayMs: args['max-lock-delay-ms'],
    usersFile: options.usersFile,
    requirepass: options.requirepass,
    tlsCert: options.tlsCert,
    tlsKey: options.tlsKey,
    tlsCa: options.tlsCa,
    tlsHandshakeTimeoutMs: args['tls-handshake-timeout-ms'],
    metrics: options.metrics,
    log,
  });
}

async function hashPasswordCommand(args) {
  const native = require('./native');
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const password = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
  if (!password) {
    process.stderr.write('fencelock: empty password\n');
    return EXIT_USAGE;
  }
  const iterations = args.iterations ?? native.constants().defaultIterations;
  print(native.hashPassword(Buffer.from(password), require('node:crypto').randomBytes(16), iterations));
  return 0;
}

async function runCommand(client, args) {
  if (args.command.length === 0) throw new UsageError('run: give the command after --');
  const lease = await client.lock(args.name, { ttl: args.ttl, wait: args.wait, shared: args.shared, lockDelay: args['lock-delay'] });
  const child = spawn(args.command[0], args.command.slice(1), {
    stdio: 'inherit',
    env: { ...process.env, FENCELOCK_TOKEN: String(lease.token), FENCELOCK_LOCK: args.name },
  });
  // A lost lease is always signalled: stop the command, it no longer holds the lock.
  lease.signal.addEventListener('abort', () => child.kill('SIGTERM'), { once: true });
  const status = await new Promise((resolve) => {
    child.on('error', (error) => {
      process.stderr.write(`fencelock: cannot run ${args.command[0]}: ${error.message}\n`);
      resolve(127);
    });
    child.on('exit', (code, signal) => resolve(code ?? 128 + (require('node:os').constants.signals[signal] ?? 0)));
  });
  await lease.release();
  return status;
}

function mainHelp() {
  const lines = [
    'usage: fencelock [-h] COMMAND ...',
    '',
    "A lock service with fencing tokens. Run a server with 'fencelock serve', or use the client subcommands against a running server.",
    '',
    'options:',
    '  -h, --help  show this help message and exit',
    '',
    'commands:',
    '  COMMAND',
  ];
  for (const [name, command] of Object.entries(COMMANDS)) lines.push(`    ${name.padEnd(9)} ${command.help}`);
  lines.push('', EPILOG);
  return lines.join('\n');
}

function commandHelp(name, command) {
  const flags = command.flags.map(([flag, spec]) => (spec.type === 'boolean' ? `[--${flag}]` : `[--${flag} ${spec.meta}]`));
  const positionals = command.positionals.map(([p]) => (p.endsWith('?') ? `[${p.slice(0, -1)}]` : p));
  const lines = [`usage: fencelock ${name} [-h] ${[...flags, ...positionals].join(' ')}`, '', command.description ?? command.help, ''];
  if (positionals.length) {
    lines.push('positional arguments:');
    for (const [p, help] of command.positionals) lines.push(`  ${p.replace('?', '').padEnd(22)}${help}`);
    lines.push('');
  }
  lines.push('options:', `  ${'-h, --help'.padEnd(22)}show this help message and exit`);
  for (const [flag, spec] of command.flags) {
    const left = spec.type === 'boolean' ? `--${flag}` : `--${flag} ${spec.meta}`;
    lines.push(left.length < 22 ? `  ${left.padEnd(22)}${spec.help}` : `  ${left}\n  ${''.padEnd(22)}${spec.help}`);
  }
  return lines.join('\n');
}

function integer(text, what) {
  if (!/^-?\d+$/.test(text)) throw new UsageError(`argument ${what}: invalid int value: '${text}'`);
  return Number(text);
}

function positive(text, what) {
  const value = integer(text, what);
  if (value <= 0) throw new UsageError(`argument ${what}: must be > 0, got ${value}`);
  return value;
}

function nonNegative(text, what) {
  const value = integer(text, what);
  if (value < 0) throw new UsageError(`argument ${what}: must be >= 0, got ${value}`);
  return value;
}

/** Seconds on the command line, ms for the client (rounded up). */
function seconds(text, what) {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0) throw new UsageError(`argument ${what}: invalid float value: '${text}'`);
  return Math.ceil(value * 1000 - 1e-9);
}

function print(text) {
  process.stdout.write(`${text}\n`);
}

function usage(message) {
  process.stderr.write(`${message}\n`);
  return EXIT_USAGE;
}

module.exports = { main, EXIT_LOST, EXIT_UNAVAILABLE };
