// The shared client vectors (tests/vectors/client/*.json) through the wasm client, as the
// Rust, Python and Node runners run them: same bytes out, typed replies and lease events,
// however the bytes received are split (as written, whole, one byte at a time).
import test from 'node:test';
import assert from 'node:assert/strict';
import { wasm, vectorFiles, bytes, text } from './helpers.mjs';
import { translate } from '../../src/errors.js';

const CHECKED = ['outputs', 'replies', 'events', 'result', 'timeout'];
const files = vectorFiles('client');

test('the client vector set is there', () => {
  assert.ok(files.length >= 8);
});

function chunks(data, splits, how) {
  if (how === 'whole') return [data];
  if (how === 'bytes') return [...data].map((_, i) => data.subarray(i, i + 1));
  const out = [];
  let start = 0;
  for (const end of [...(splits ?? []), data.length]) {
    out.push(data.subarray(start, end));
    start = end;
  }
  return out;
}

function valueJson(value) {
  if (value.error) return { error: value.error.text };
  if (value.simple !== undefined) return { simple: value.simple };
  if (value.integer !== undefined) return { integer: value.integer };
  if (value.bulk !== undefined) return { bulk: text(value.bulk) };
  if (value.null) return null;
  if (value.boolean !== undefined) return { boolean: value.boolean };
  if (value.double !== undefined) return { double: value.double };
  if (value.big !== undefined) return { big: value.big };
  if (value.array) return { array: value.array.map(valueJson) };
  if (value.push) return { push: value.push.map(valueJson) };
  if (value.map) return { map: value.map.map(([k, v]) => [valueJson(k), valueJson(v)]) };
  throw new Error(`unexpected value ${JSON.stringify(value)}`);
}

function replyJson(reply) {
  if (reply.error) return { error: reply.error.text };
  if (reply.granted) return { granted: { token: reply.granted.token, deadline: reply.granted.deadlineMs } };
  if (reply.msLeft !== undefined) return { ms_left: reply.msLeft };
  if (reply.ok) return 'ok';
  if (reply.locks) {
    return {
      locks: reply.locks.map((lock) => ({
        name: lock.name,
        holders: lock.holders.map((h) => ({ token: h.token, mode: h.mode, owner: h.owner ?? null, ms_left: h.msLeft, client: h.client })),
        waiters: lock.waiters.map((w) => ({
          waiter: w.waiter, position: w.position, mode: w.mode, owner: w.owner ?? null, client: w.client, ms_left: w.msLeft,
        })),
        delay_ms_left: lock.delayMsLeft,
      })),
    };
  }
  if (reply.info) return { info: reply.info.map((entry) => [entry.section, entry.key, entry.value]) };
  if (reply.pong) return { pong: text(reply.pong) };
  if (reply.value) return { value: valueJson(reply.value) };
  throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
}

function eventJson(event) {
  if (event.kind === 'lease_lost') {
    let reason = event.reason;
    if (reason === 'stolen') reason = { stolen: event.byToken };
    else if (reason === 'refused') reason = { refused: event.refusal.text };
    return { lease_lost: { name: event.name, token: event.token, reason } };
  }
  return { notice: { kind: event.notice, name: event.name, token: event.token, by_token: event.byToken ?? null } };
}

function run(vector, how) {
  const config = vector.config ?? {};
  const client = new wasm.WasmClient({
    endpoints: config.endpoints,
    resp3: config.resp3,
    requestTimeoutMs: config.request_timeout_ms,
    connectTimeoutMs: config.connect_timeout_ms,
  });
  let now = 0;
  const produced = [];
  for (const step of vector.steps) {
    now = step.at_ms ?? now;
    const got = {};
    const conn = step.conn ?? 1;
    let submitted = null;
    try {
      switch (step.op) {
        case 'acquire': {
          const o = step.options ?? {};
          submitted = client.acquire(now, step.name, step.ttl_ms, {
            waitMs: o.wait_ms, shared: o.shared, steal: o.steal, owner: o.owner ?? undefined,
            ephemeral: o.ephemeral, lockDelayMs: o.lock_delay_ms ?? undefined,
          });
          break;
        }
        case 'renew': submitted = client.renew(now, step.name, step.token, step.ttl_ms); break;
        case 'release': submitted = client.release(now, step.name, step.token); break;
        case 'verify': submitted = client.verify(now, step.name, step.token); break;
        case 'query': submitted = client.query(now, step.prefix ?? ''); break;
        case 'info': submitted = client.info(now, step.section ?? undefined); break;
        case 'ping': submitted = client.ping(now); break;
        case 'command': submitted = client.command(now, step.argv.map(bytes)); break;
        default: break;
      }
    } catch (thrown) {
      const error = translate(thrown);
      got.result = { error: error.message };
    }
    if (submitted !== null) got.result = { id: submitted };
    switch (step.op) {
      case 'keep_alive': got.result = client.keepAlive(step.name, step.token); break;
      case 'forget': client.forget(step.name, step.token); break;
      case 'lease': {
        const status = client.lease(now, step.name, step.token);
        got.result = status === null ? null : { deadline: status.deadlineMs, ms_left: status.msLeft, kept_alive: status.keptAlive };
        break;
      }
      case 'cancel': client.cancel(now, step.id); break;
      case 'connected': client.handleConnected(now, conn); break;
      case 'receive':
        for (const chunk of chunks(bytes(step.data), step.splits, how)) client.receive(now, conn, chunk);
        break;
      case 'disconnect': client.handleDisconnect(now, conn, step.reason ?? 'reset'); break;
      case 'timeout': client.handleTimeout(now); break;
      case 'close': client.close(now); break;
      default: break;
    }
    const drained = client.drain();
    if (drained.outputs.length) {
      got.outputs = drained.outputs.map((o) => {
        if (o.kind === 'transmit') return ['transmit', o.conn, text(o.data)];
        if (o.kind === 'connect') return ['connect', o.conn, o.endpoint];
        return [o.kind, o.conn];
      });
    }
    if (drained.replies.length) got.replies = drained.replies.map((r) => [r.id, replyJson(r)]);
    if (drained.events.length) got.events = drained.events.map(eventJson);
    if (drained.timeoutMs !== undefined) got.timeout = drained.timeoutMs;
    produced.push(got);
  }
  return produced;
}

for (const { name, scenario } of files) {
  for (const how of ['as_written', 'whole', 'bytes']) {
    test(`client vector ${name} (${how})`, () => {
      const produced = run(scenario, how);
      scenario.steps.forEach((step, index) => {
        for (const key of CHECKED) {
          assert.deepEqual(produced[index][key], step[key], `step ${index} (${step.op}) ${key}`);
        }
      });
    });
  }
}
