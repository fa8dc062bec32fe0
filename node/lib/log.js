'use strict';
// A small leveled logger on stderr, in the Python host's line format.

const LEVELS = { debug: 10, info: 20, warning: 30, error: 40, critical: 50 };

/** Returns a logger named `name` that prints at `level` and above. */
function logger(name, level = 'info') {
  const threshold = LEVELS[level] ?? LEVELS.info;
  const emit = (severity) => (message) => {
    if (LEVELS[severity] < threshold) return;
    process.stderr.write(`${new Date().toISOString()} ${severity.toUpperCase()} ${name}: ${message}\n`);
  };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warning: emit('warning'),
    error: emit('error'),
    critical: emit('critical'),
  };
}

/** A logger that prints nothing. */
const silent = logger('fencelock', 'none');
silent.debug = silent.info = silent.warning = silent.error = silent.critical = () => {};

module.exports = { logger, silent, LEVELS };
