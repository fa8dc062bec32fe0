'use strict';
// Atomic, durable file changes: temp file, fsync, rename, fsync of the directory (as Python's
// _durable.py), performed by the addon (bindings/node/src/durable.rs, which the native socket
// loop uses too). Any failure throws DurabilityError; after a failed fsync the kernel may have
// dropped the dirty pages, so callers treat it as fatal (the server exits, a fence refuses
// every later check).

const native = require('./native');
const { DurabilityError } = require('./errors');

/** Replaces `file` with `data` so that a crash leaves either the old or the new file. */
function writeAtomic(file, data) {
  try {
    native.writeFileDurably(file, Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  } catch (error) {
    throw new DurabilityError(`durable write of ${file} failed: ${error.message}`, { cause: error });
  }
}

/** Deletes `file` (if present) and makes the deletion durable. */
function removeDurable(file) {
  try {
    native.removeFileDurably(file);
  } catch (error) {
    throw new DurabilityError(`durable removal of ${file} failed: ${error.message}`, { cause: error });
  }
}

module.exports = { writeAtomic, removeDurable };
