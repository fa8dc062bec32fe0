'use strict';
// Clocks in milliseconds. The core never reads one: hosts read a clock and pass `now` in.

const { performance } = require('node:perf_hooks');

/** Returns a monotonic clock: whole milliseconds since it was made (truncated, as HOSTS.md asks). */
function monotonicClock() {
  const origin = performance.now();
  return () => Math.floor(performance.now() - origin);
}

/** A clock that moves only when told to (ms); call `now()` to read it. */
class ManualClock {
  constructor(start = 0) {
    this.ms = start;
    this.now = this.now.bind(this);
  }

  /** Returns the reading. */
  now() {
    return this.ms;
  }

  /** Moves the clock forward by `ms` and returns the new reading. */
  advance(ms) {
    if (!(ms >= 0)) throw new RangeError('a clock cannot go backwards');
    this.ms += ms;
    return this.ms;
  }
}

module.exports = { monotonicClock, ManualClock };
