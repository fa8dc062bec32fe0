// The page's side of the channel to the worker: starts (or joins) the SharedWorker or Worker,
// waits for its hello, opens one MessagePort per connection the core asks for, and tells the
// client when the worker is gone. Liveness goes both ways through Web Locks: the page holds a
// lock per connection (the worker's request for it is granted once the page closes the
// connection or is gone), and the worker holds one the page requests (granted once the worker
// is gone). A frozen page keeps its locks, so it cannot be mistaken for a closed one.

import { PROTOCOL, randomId } from './shared.js';

const DEFAULT_WORKER = new URL('./worker-main.js', import.meta.url);

export class WorkerLink {
  /**
   * @param {object} options
   * @param {string | URL | SharedWorker | Worker | MessagePort} [options.worker]
   * @param {boolean} [options.shared]
   * @param {() => void} onGone called once per worker instance that ends
   */
  constructor(options, onGone) {
    this.options = options;
    this.onGone = onGone;
    /** @type {Promise<{ control: any, settings: any, liveness: string, started: any }> | null} */
    this.current = null;
    this.closed = false;
  }

  /** Returns the live worker's control channel and settings, starting a worker if needed. */
  ready() {
    if (this.current === null) this.current = this.start();
    return this.current;
  }

  start() {
    const control = this.control();
    return new Promise((resolve, reject) => {
      const onMessage = (/** @type {MessageEvent} */ event) => {
        const message = event.data;
        if (message?.fencelock !== PROTOCOL || message.type !== 'hello') return;
        control.removeEventListener('message', onMessage);
        this.watch(message.liveness);
        resolve({ control, settings: message.settings ?? {}, liveness: message.liveness, started: message.started ?? null });
      };
      control.addEventListener('message', onMessage);
      if (typeof control.start === 'function') control.start();
      this.worker?.addEventListener?.('error', (/** @type {any} */ event) => {
        reject(new Error(`the fencelock worker failed to start: ${event.message ?? 'see the console'}`));
      });
    });
  }

  /** Returns the channel to send `connect` messages on. */
  control() {
    const given = this.options.worker;
    if (given !== undefined && typeof given === 'object' && !(given instanceof URL)) {
      if (this.usedGiven) throw new Error('the fencelock worker given to connect() is gone');
      this.usedGiven = true;
      this.worker = given;
      return 'port' in given ? given.port : given;
    }
    const url = given ?? DEFAULT_WORKER;
    const shared = this.options.shared ?? typeof SharedWorker === 'function';
    this.worker = shared
      ? new SharedWorker(url, { type: 'module', name: 'fencelock' })
      : new Worker(url, { type: 'module', name: 'fencelock' });
    return shared ? /** @type {SharedWorker} */ (this.worker).port : this.worker;
  }

  /** Requests the worker's liveness lock: granted only once that worker has ended. */
  watch(liveness) {
    navigator.locks.request(liveness, () => {
      this.current = null;
      if (!this.closed) this.onGone();
    });
  }

  /**
   * Opens one connection: holds its liveness lock, then hands the worker a MessagePort.
   * @returns {Promise<{ port: MessagePort, release: () => void }>}
   */
  async open() {
    const { control } = await this.ready();
    const liveness = `fencelock-conn:${randomId()}`;
    const release = await holdLock(liveness);
    const channel = new MessageChannel();
    control.postMessage({ fencelock: PROTOCOL, type: 'connect', liveness }, [channel.port2]);
    return { port: channel.port1, release };
  }

  close() {
    this.closed = true;
    if (this.worker instanceof Worker && this.options.worker === undefined) this.worker.terminate();
  }
}

/** Takes the Web Lock `name` and resolves with the function that releases it. */
function holdLock(name) {
  return new Promise((granted) => {
    navigator.locks.request(name, () => new Promise((release) => granted(() => release(undefined))));
  });
}
