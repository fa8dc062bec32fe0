'use strict';
// Shared by the tests: where the shared vectors are, and Latin-1 byte strings.

const path = require('node:path');
const fs = require('node:fs');

const VECTORS = process.env.FENCELOCK_VECTORS ?? path.resolve(__dirname, '..', '..', 'tests', 'vectors');

/** Returns the parsed JSON files of one vector family, sorted by name. */
function vectorFiles(family) {
  const dir = path.join(VECTORS, family);
  return fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((name) => ({ name, scenario: JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) }));
}

/** One character per byte, as the vectors write bytes. */
const bytes = (text) => Buffer.from(text, 'latin1');
// Transmits arrive as Latin-1 strings (one character per byte), file contents as buffers.
const text = (data) => (typeof data === 'string' ? data : Buffer.from(data).toString('latin1'));

/** The package's own error module (its one mapping of error records), from wherever it is installed. */
function errors() {
  return require(path.join(path.dirname(require.resolve('fencelock')), 'errors.js'));
}

module.exports = { VECTORS, vectorFiles, bytes, text, errors };

const { spawn } = require('node:child_process');
const os = require('node:os');

/** The `fencelock` CLI of the installed package. */
const CLI = path.join(path.dirname(require.resolve('fencelock/package.json')), 'bin', 'fencelock.js');

/**
 * Starts a server process (`command` is the argv before `serve`'s flags) with `--port 0
 * --ready-file`; resolves to `{ port, child, output(), stop(signal) }` once it listens.
 * `env` adds environment variables (e.g. FENCELOCK_BOOT_ID_PATH). `metrics` is 'HOST:PORT' with
 * `--metrics`, else null.
 */
async function startServerProcess(command, flags = [], { env } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fencelock-ready-'));
  const ready = path.join(dir, 'ready');
  const [program, ...args] = command;
  const child = spawn(program, [...args, '--port', '0', '--ready-file', ready, ...flags], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: env ? { ...process.env, ...env } : process.env,
  });
  let output = '';
  child.stdout.on('data', (data) => { output += data; });
  child.stderr.on('data', (data) => { output += data; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  const deadline = Date.now() + 15000;
  while (!fs.existsSync(ready)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not start: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const fields = fs.readFileSync(ready, 'utf8').trim().split(' ');
  const port = Number(fields[1]);
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    port,
    // With --metrics, the ready file's third field is where they are served.
    metrics: fields[2] ?? null,
    child,
    output: () => output,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** The Python interpreter with the fencelock package installed, or null (cross-host tests skip). */
function pythonWithFencelock() {
  const candidates = [
    process.env.FENCELOCK_PYTHON,
    path.join(process.env.FENCELOCK_REPO ?? path.resolve(__dirname, '..', '..'), '.venv-python-test', 'bin', 'python'),
  ].filter(Boolean);
  const { spawnSync } = require('node:child_process');
  for (const python of candidates) {
    if (fs.existsSync(python) && spawnSync(python, ['-c', 'import fencelock']).status === 0) return python;
  }
  return null;
}

module.exports.CLI = CLI;
module.exports.startServerProcess = startServerProcess;
module.exports.pythonWithFencelock = pythonWithFencelock;
