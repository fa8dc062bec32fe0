// Every shared protocol vector (tests/vectors/protocol/*.json) through the wasm server: bytes
// in, exact bytes out, each input cut three ways (as given, whole, one byte at a time). The
// worker host feeds the same server the same bytes from MessagePorts.
import test from 'node:test';
import assert from 'node:assert/strict';
import { wasm, vectorFiles, bytes, text } from './helpers.mjs';

const SEED = new Uint8Array(16);
const files = vectorFiles('protocol');

test('the protocol vector set is there', () => {
  assert.ok(files.length >= 10);
});

function chunks(data, splits, cut) {
  if (cut === 'whole' || data.length === 0) return [data];
  if (cut === 'bytewise') return [...data].map((_, i) => data.subarray(i, i + 1));
  const edges = [0, ...(splits ?? []), data.length];
  const out = [];
  for (let i = 0; i + 1 < edges.length; i += 1) if (edges[i + 1] > edges[i]) out.push(data.subarray(edges[i], edges[i + 1]));
  return out;
}

for (const { name, scenario } of files) {
  for (const cut of ['given', 'whole', 'bytewise']) {
    test(`protocol vector ${name} (${cut})`, () => {
      const server = new wasm.WasmServer(scenario.engine ?? {}, scenario.server ?? {}, SEED);
      // The users file is the JSON value itself; the core parses its bytes.
      if (scenario.users) server.setUsers(new TextEncoder().encode(JSON.stringify(scenario.users)));
      let now = 0;
      scenario.steps.forEach((step, index) => {
        now = step.at_ms ?? now;
        const conn = step.conn ?? 1;
        switch (step.op) {
          case 'connect':
            assert.equal(server.connect(now), conn, `step ${index}: connection ids go 1, 2, 3, ...`);
            break;
          case 'send':
            for (const chunk of chunks(bytes(step.data), step.splits, cut)) server.receive(now, conn, chunk);
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
        for (const output of server.drain()) {
          if (output.kind === 'transmit') out[String(output.conn)] = (out[String(output.conn)] ?? '') + text(output.data);
          else if (output.kind === 'close') closed.push(output.conn);
          else {
            assert.ok(output.kind === 'write' && output.file === 'ceiling', JSON.stringify(output));
            persisted.push(Number(text(output.data)));
          }
        }
        const audit = [];
        for (let event = server.pollAudit(); event !== undefined; event = server.pollAudit()) audit.push(JSON.parse(event));
        const where = `${name} step ${index} (${step.op}, cut ${cut})`;
        if ('audit' in step) assert.deepEqual(audit, step.audit, `${where}: audit events differ`);
        assert.deepEqual(out, step.out ?? {}, `${where}: output differs`);
        assert.deepEqual(closed, step.closed ?? [], `${where}: closes differ`);
        if ('persist' in step) assert.deepEqual(persisted, step.persist, `${where}: persisted ceilings differ`);
      });
    });
  }
}
