// Bad input gets a clear error and never traps the module: a panic in wasm would poison it
// for every later call, so after each refusal the same object must still work.
import test from 'node:test';
import assert from 'node:assert/strict';
import { wasm } from './helpers.mjs';
import { translate, BadRequest } from '../../src/errors.js';

test('the engine refuses bad numbers, options and settings and keeps working', () => {
  const engine = new wasm.WasmEngine({}, new Uint8Array(16));
  assert.throws(() => engine.acquire(0, 'a', -1, {}), RangeError);
  assert.throws(() => engine.acquire(0, 'a', 1.5, {}), /ttlMs must be a whole number >= 0, got 1.5/);
  assert.throws(() => engine.acquire(Number.NaN, 'a', 100, {}), /nowMs must be a whole number/);
  assert.throws(() => engine.acquire(0, 'a', 100, 'fast'), TypeError);
  assert.throws(() => engine.acquire(0, 'a', 100, { waitMs: '10' }), /waitMs must be a number/);
  assert.throws(() => engine.acquire(0, 'a', 100, { shared: 1 }), /shared must be a boolean/);
  assert.throws(() => new wasm.WasmEngine({ max_ttl_ms: -5 }), RangeError);
  assert.throws(() => new wasm.WasmEngine({ no_such_setting: 1 }), (thrown) => translate(thrown) instanceof BadRequest);
  assert.throws(() => new wasm.WasmEngine({}, new Uint8Array(3)), /hashSeed must be 16 bytes/);
  assert.throws(() => new wasm.WasmEngine({}, undefined, 'clean', 1, new Uint8Array([1, 2])), (thrown) => translate(thrown).code === 'ERR');
  // wasm-bindgen's own string passing traps on a non-string: the glue checks first.
  for (const name of [42, undefined, null, {}, Symbol('s')]) {
    assert.throws(() => engine.acquire(0, name, 100, {}), (thrown) => thrown instanceof TypeError && /name must be a string/.test(thrown.message));
  }
  assert.throws(() => engine.query(0, 7), /prefix must be a string/);
  const huge = 'x'.repeat(5000);
  assert.equal(translate(catching(() => engine.acquire(0, huge, 100, {}))).code, 'ERR');
  assert.equal(engine.acquire(0, 'a', 100, {}).token, 1);
});

test('the server and client refuse bad input and keep working', () => {
  const server = new wasm.WasmServer({}, {}, new Uint8Array(16));
  assert.throws(() => wasm.WasmServer.recover(0, { ceiling: new TextEncoder().encode('not a number') }, {}, {}), /ceiling/i);
  assert.throws(() => wasm.WasmServer.recover(0, { passwords: null }, {}, {}), /not a fencelock data file/);
  assert.throws(() => server.execute(0, 1, ['PING']), /array of Uint8Array/);
  const conn = server.connect(0);
  server.receive(0, conn, new Uint8Array([0xff, 0x00, 0x2a, 0x0d, 0x0a, 0x24, 0x2d, 0x39]));
  assert.ok(server.drain().length > 0);
  const client = new wasm.WasmClient({});
  assert.throws(() => new wasm.WasmClient({ endpoints: 0 }), /at least one endpoint/);
  assert.throws(() => client.acquire(0, '', 100, {}), (thrown) => translate(thrown).code === 'ERR');
  assert.throws(() => client.renew(0, 'a', 2 ** 60, 100), (thrown) => translate(thrown).code === 'ERR');
  assert.throws(() => client.cancel(0, -1), RangeError);
  client.receive(0, 99, new Uint8Array([1, 2, 3]));
  assert.equal(typeof client.acquire(0, 'a', 100, {}), 'number');
  const fence = new wasm.WasmFence();
  assert.throws(() => wasm.WasmFence.decode(new Uint8Array([1, 2, 3])), (thrown) => thrown.code === 'CORRUPT');
  assert.throws(() => fence.check(3, 3), /resource must be a string/);
  assert.throws(() => client.handleDisconnect(0, 1, {}), /reason must be a string/);
  assert.deepEqual(fence.check('r', 3), { accepted: true, advanced: true, highest: 3 });
});

function catching(call) {
  try {
    call();
  } catch (thrown) {
    return thrown;
  }
  throw new Error('expected a throw');
}
