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
const text = (data) => Buffer.from(data).toString('latin1');

/** The package's own error module (its one mapping of error records), from wherever it is installed. */
function errors() {
  return require(path.join(path.dirname(require.resolve('fencelock')), 'errors.js'));
}

module.exports = { VECTORS, vectorFiles, bytes, text, errors };
