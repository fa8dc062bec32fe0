// Shared by the Node tests: the wasm module built for Node, the shared vectors, Latin-1 bytes,
// and the vector runners' partial matching.
import { createRequire } from 'node:module';
import { readdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
export const wasm = createRequire(import.meta.url)(join(here, '..', '..', 'pkg', 'node', 'fencelock_wasm.js'));
const VECTORS = process.env.FENCELOCK_VECTORS ?? join(here, '..', '..', '..', 'tests', 'vectors');

/** Returns the parsed JSON files of one vector family, sorted by name. */
export function vectorFiles(family) {
  const dir = join(VECTORS, family);
  return readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((name) => ({ name, scenario: JSON.parse(readFileSync(join(dir, name), 'utf8')) }));
}

/** One byte per character, as the vectors write bytes. */
export const bytes = (text) => new Uint8Array(Buffer.from(text, 'latin1'));
export const text = (data) => Buffer.from(data).toString('latin1');

/** Partial for objects, exact for arrays and scalars (tests/vectors/README.md). */
export function matches(expected, actual, where) {
  if (expected !== null && typeof expected === 'object' && !Array.isArray(expected)) {
    assert.ok(actual !== null && typeof actual === 'object', `${where}: expected an object, got ${JSON.stringify(actual)}`);
    for (const [key, value] of Object.entries(expected)) {
      assert.ok(key in actual, `${where}.${key}: missing in ${JSON.stringify(actual)}`);
      matches(value, actual[key], `${where}.${key}`);
    }
  } else if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual) && actual.length === expected.length, `${where}: expected ${expected.length} items, got ${JSON.stringify(actual)}`);
    expected.forEach((want, index) => matches(want, actual[index], `${where}[${index}]`));
  } else {
    assert.deepEqual(actual, expected, `${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}
