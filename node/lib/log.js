'use strict';
// A small leveled logger on stderr, in the Python host's line format.

const LEVELS = { debug: 10, info: 20, warning: 30, error: 40, critical: 50 };

/**
 * Returns a logger named `name` that prints at `level` and above, as text lines or (format
 * `json`) one JSON object per line. `audit(text, json)` logs an audit event from the core at
 * warning level; in JSON its fields join the line.
 */
function logger(name, level = 'info', format = 'text') {
  const threshold = LEVELS[level] ?? LEVELS.info;
  const write = (severity, loggerName, message, fields) => {
    if (LEVELS[severity] < threshold) return;
    if (format === 'json') {
      const line = { ts: new Date().toISOString(), level: severity, logger: loggerName, msg: message, ...fields };
      process.stderr.write(`${JSON.stringify(line)}\n`);
    } else {
      process.stderr.write(`${new Date().toISOString()} ${severity.toUpperCase()} ${loggerName}: ${message}\n`);
    }
  };
  const emit = (severity) => (message) => write(severity, name, message, undefined);
  return {
    audit: (text, json) => write('warning', 'fencelock.audit', text, JSON.parse(json)),
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
