// Small things both ends of the MessagePort need.

/** Marks fencelock's control messages (and their version) among others on the same port. */
export const PROTOCOL = 'fencelock/1';

/** The host's clock: whole milliseconds on the monotonic performance clock. */
export function now() {
  return Math.floor(performance.now());
}

/** A random id for lock names. */
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** 16 random bytes keying the engine's name index (clients choose lock names). */
export function hashSeed() {
  return crypto.getRandomValues(new Uint8Array(16));
}
