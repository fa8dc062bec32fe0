'use strict';
// Loads the native addon built from bindings/node (the core's glue). Everything else in this
// package is I/O and JavaScript idiom around it.

const path = require('node:path');

const FILE = 'fencelock.linux-x64-gnu.node';

function load() {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `fencelock ships a native addon for linux-x64 only; this is ${process.platform}-${process.arch}`,
    );
  }
  try {
    return require(path.join(__dirname, '..', FILE));
  } catch (error) {
    throw new Error(
      `fencelock: cannot load its native addon ${FILE} (in a clone, run 'npm run build' in node/): ${error.message}`,
      { cause: error },
    );
  }
}

module.exports = load();
