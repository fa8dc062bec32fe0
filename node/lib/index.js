'use strict';
// fencelock: a lock service with fencing tokens. The engine, the protocol server and the
// client's rules are one Rust core (the native addon); this package is I/O and JavaScript.

const errors = require('./errors');
const { Engine, MAX_TOKEN } = require('./engine');
const { Fence } = require('./fence');
const { ManualClock, monotonicClock } = require('./clock');
const { writeAtomic, removeDurable } = require('./durable');

module.exports = {
  Engine,
  Fence,
  ManualClock,
  monotonicClock,
  MAX_TOKEN,
  writeAtomic,
  removeDurable,
  ...errors,
};
// Internal record converters are not part of the API.
delete module.exports.fromRecord;
delete module.exports.translate;

// The client and the server load lazily: `require('fencelock')` for the engine alone pulls in
// no networking code.
Object.defineProperties(module.exports, {
  connect: { enumerable: true, get: () => require('./client').connect },
  Client: { enumerable: true, get: () => require('./client').Client },
  Lease: { enumerable: true, get: () => require('./lease').Lease },
  Server: { enumerable: true, get: () => require('./server').Server },
  serve: { enumerable: true, get: () => require('./server').serve },
});
