'use strict';
// Atomic, durable file writes: temp file, fsync, rename, fsync of the directory (as Python's
// _durable.py). Any failure throws DurabilityError; after a failed fsync the kernel may have
// dropped the dirty pages, so callers treat it as fatal (the server exits, a fence refuses
// every later check).

const fs = require('node:fs');
const path = require('node:path');
const { DurabilityError } = require('./errors');

/** Replaces `file` with `data` so that a crash leaves either the old or the new file. */
function writeAtomic(file, data) {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  try {
    const fd = fs.openSync(temp, 'w', 0o644);
    try {
      let offset = 0;
      while (offset < data.length) offset += fs.writeSync(fd, data, offset, data.length - offset);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, file);
    fsyncDir(path.dirname(file));
  } catch (error) {
    throw durability(`durable write of ${file} failed`, error);
  }
}

/** Deletes `file` (if present) and makes the deletion durable. */
function removeDurable(file) {
  try {
    try {
      fs.unlinkSync(file);
    } catch (error) {
      if (error.code === 'ENOENT') return;
      throw error;
    }
    fsyncDir(path.dirname(file));
  } catch (error) {
    throw durability(`durable removal of ${file} failed`, error);
  }
}

/** Flushes a directory entry change (create, rename, unlink) to disk. */
function fsyncDir(directory) {
  const fd = fs.openSync(directory, fs.constants.O_RDONLY | (fs.constants.O_DIRECTORY ?? 0));
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function durability(what, error) {
  if (error instanceof DurabilityError) return error;
  return new DurabilityError(`${what}: ${error.message}`, { cause: error });
}

module.exports = { writeAtomic, removeDurable, fsyncDir };
