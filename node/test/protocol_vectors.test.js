'use strict';
// Every shared protocol vector (tests/vectors/protocol/*.json) through the addon: bytes in,
// exact bytes out, each input cut three ways (as given, whole, one byte at a time), and once
// more as given through `receiveReply`, the server's fast path (a reply handed back directly
// when it is the only output), with the host's timer re-armed from `pollTimeout` after each step.

const test = require('node:test');
const assert = require('node:assert/strict');
const { NativeServer } = require('fencelock/native');
const { vectorFiles, bytes, text } = require('./helpers');

const SEED = Buffer.alloc(16);
const files = vectorFiles('protocol');
let fastReplies = 0;

test('the protocol vector set is there', () => {
  assert.ok(files.length >= 10);
});

function settings(object) {
  const out = {};
  for (const [key, value] of Object.entries(object ?? {})) out[key] = typeof value === 'boolean' ? Number(value) : value;
  return out;
}

function chunks(data, splits, cut) {
  if (cut === 'whole' || data.length === 0) return [data];
  if (cut === 'bytewise') return [...data].map((_, i) => data.subarray(i, i + 1));
  const edges = [0, ...(splits ?? []), data.length];
  const out = [];
  for (let i = 0; i + 1 < edges.length; i += 1) if (edges[i + 1] > edges[i]) out.push(data.subarray(edges[i], edges[i + 1]));
  return out;
}

for (const { name, scenario } of files) {
  for (const cut of ['given', 'whole', 'bytewise', 'receiveReply']) {
    test(`protocol vector ${name} (${cut})`, () => {
      const server = new NativeServer(settings(scenario.engine), settings(scenario.server), SEED);
      // The users file is the JSON value itself; the core parses its bytes.
      if (scenario.users) server.setUsers(Buffer.from(JSON.stringify(scenario.users)));
      let now = 0;
      scenario.steps.forEach((step, index) => {
        const drained = [];
        now = step.at_ms ?? now;
        const conn = step.conn ?? 1;
        switch (step.op) {
          case 'connect':
            assert.equal(server.connect(now), conn, `step ${index}: connection ids go 1, 2, 3, ...`);
            break;
          case 'send':
            if (cut === 'receiveReply') {
              for (const chunk of chunks(bytes(step.data), step.splits, 'given')) {
                const reply = server.receiveReply(now, conn, chunk);
                if (reply === null) drained.push(...server.drain());
                else if (reply.length > 0) fastReplies += 1;
                if (reply !== null && reply.length > 0) drained.push({ kind: 'transmit', conn, data: Buffer.from(reply, 'latin1') });
              }
            } else {
              for (const chunk of chunks(bytes(step.data), step.splits, cut)) server.receive(now, conn, chunk);
            }
            break;
          case 'execute':
            server.execute(now, conn, step.argv.map(bytes));
            break;
          case 'disconnect':
            server.disconnect(now, conn);
            break;
          case 'timeout':
            server.handleTimeout(now);
            break;
          default:
            throw new Error(`step ${index}: unknown op ${step.op}`);
        }
        const out = {};
        const closed = [];
        const persisted = [];
        drained.push(...server.drain());
        if (cut === 'receiveReply') server.pollTimeout();
        for (const output of drained) {
          if (output.kind === 'transmit') out[String(output.conn)] = (out[String(output.conn)] ?? '') + text(output.data);
          else if (output.kind === 'close') closed.push(output.conn);
          else {
            assert.ok(output.kind === 'write' && output.file === 'ceiling', JSON.stringify(output));
            persisted.push(Number(text(output.data)));
          }
        }
        const audit = [];
        for (let event = server.pollAudit(); event !== null; event = server.pollAudit()) audit.push(JSON.parse(event.json));
        const where = `${name} step ${index} (${step.op}, cut ${cut})`;
        if ('audit' in step) assert.deepEqual(audit, step.audit, `${where}: audit events differ`);
        assert.deepEqual(out, step.out ?? {}, `${where}: output differs`);
        assert.deepEqual(closed, step.closed ?? [], `${where}: closes differ`);
        if ('persist' in step) assert.deepEqual(persisted, step.persist, `${where}: persisted ceilings differ`);
      });
    });
  }
}

test('the fast path answered some of the vectors\' requests itself', () => {
  assert.ok(fastReplies >= 20, `receiveReply returned ${fastReplies} replies`);
});
