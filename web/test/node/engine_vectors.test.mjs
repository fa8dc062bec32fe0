// Every shared engine scenario (tests/vectors/engine/*.json) through the wasm module built for
// Node, on the vectors' own milliseconds (as node/test/engine_vectors.test.js runs the addon).
import test from 'node:test';
import assert from 'node:assert/strict';
import { wasm, vectorFiles, matches } from './helpers.mjs';
import { translate, FencelockError } from '../../src/errors.js';

const SEED = new Uint8Array(16);
const files = vectorFiles('engine');

test('the engine vector set is there', () => {
  assert.ok(files.length >= 15);
});

for (const { name, scenario } of files) {
  test(`engine vector ${name}`, () => {
    const runner = new Runner(scenario);
    scenario.steps.forEach((step, index) => {
      try {
        runner.step(step);
      } catch (failure) {
        failure.message = `step ${index} ${JSON.stringify(step)}: ${failure.message}`;
        throw failure;
      }
    });
  });
}

class Runner {
  constructor(scenario) {
    this.config = scenario.config ?? {};
    // [boot id, system monotonic ms at the scenario's time 0], if the engine has a boot clock.
    this.boot = scenario.boot ? [scenario.boot.id, scenario.boot.monotonic_ms] : null;
    this.horizon = null;
    const start = scenario.start ?? {};
    this.persisted = start.kind === 'crashed' ? start.ceiling ?? 0 : 0;
    this.engine = start.kind === 'crashed'
      ? new wasm.WasmEngine(this.config, SEED, 'crashed', this.persisted, undefined, 0, ...this.bootArgs(0))
      : new wasm.WasmEngine(this.config, SEED, 'fresh', 0, undefined, 0, ...this.bootArgs(0));
    this.highest = 0;
    this.at = 0;
  }

  step(step) {
    if ('at_ms' in step) this.at = step.at_ms;
    const result = this.execute(step, this.at);
    for (let ceiling = this.engine.pollPersist(); ceiling !== undefined; ceiling = this.engine.pollPersist()) {
      assert.ok(ceiling >= this.persisted, `persist request went down: ${ceiling} < ${this.persisted}`);
      this.persisted = ceiling;
    }
    for (let horizon = this.engine.pollHorizon(); horizon !== undefined; horizon = this.engine.pollHorizon()) {
      this.horizon = horizon;
    }
    if ('token' in result) {
      this.see(result.token);
      this.seeDeadline(result.deadline_ms);
    }
    if (step.op === 'renew' && 'ms_left' in result) this.seeDeadline(this.at + result.ms_left);
    const events = [];
    for (let raw = this.engine.pollEvent(); raw !== undefined; raw = this.engine.pollEvent()) {
      const event = eventJson(raw);
      if (event.type === 'granted') {
        this.see(event.token);
        this.seeDeadline(event.deadline_ms);
      }
      events.push(event);
    }
    assert.ok(this.engine.lastToken() <= this.persisted, 'token revealed above the persisted ceiling');
    assert.equal(this.engine.checkInvariants(), undefined);
    if ('expect' in step) matches(step.expect, result, 'expect');
    if ('events' in step) matches(step.events, events, 'events');
  }

  bootArgs(now) {
    return this.boot === null ? [undefined, undefined] : [this.boot[0], this.boot[1] + now];
  }

  horizonJson() {
    if (this.horizon === null) return { monotonic_ms: null, boot_id: null, ceiling: null };
    const { monotonic_ms, boot_id, ceiling } = JSON.parse(new TextDecoder().decode(this.horizon));
    return { monotonic_ms, boot_id, ceiling };
  }

  /** A deadline revealed by an engine with a boot clock must be under the persisted horizon. */
  seeDeadline(deadline) {
    if (this.boot === null) return;
    const horizon = this.horizonJson().monotonic_ms ?? 0;
    assert.ok(this.boot[1] + deadline <= horizon, `deadline ${deadline} revealed past the persisted horizon ${horizon}`);
  }

  see(token) {
    assert.ok(token > this.highest, `I2: token ${token} not above earlier ${this.highest}`);
    this.highest = token;
  }

  execute(step, now) {
    const engine = this.engine;
    const name = step.name ?? '';
    const token = step.token ?? 0;
    const ttl = step.ttl_ms ?? 0;
    try {
      switch (step.op) {
        case 'acquire': {
          const acquired = engine.acquire(now, name, ttl, {
            shared: step.mode === 'shared',
            waitMs: step.wait_ms ?? 0,
            owner: step.owner ?? undefined,
            steal: Boolean(step.steal),
            client: step.client ?? 0,
            ephemeral: Boolean(step.ephemeral),
            lockDelayMs: step.lock_delay_ms ?? undefined,
          });
          if (acquired.token !== undefined) return { token: acquired.token, deadline_ms: acquired.deadlineMs };
          return { queued: acquired.waiter, deadline_ms: acquired.deadlineMs };
        }
        case 'renew':
          return { ms_left: engine.renew(now, name, token, ttl) };
        case 'verify':
          return { ms_left: engine.verify(now, name, token) };
        case 'release':
          engine.release(now, name, token);
          return { ok: true };
        default:
          break;
      }
    } catch (thrown) {
      const error = translate(thrown);
      if (!(error instanceof FencelockError)) throw error;
      return { error: error.code, message: error.message };
    }
    switch (step.op) {
      case 'cancel':
        return { ok: engine.cancelWait(now, step.waiter ?? 0) };
      case 'disconnect':
        engine.disconnect(now, step.client ?? 0);
        return {};
      case 'tick':
        engine.handleTimeout(now);
        return {};
      case 'next_timeout':
        return { at_ms: engine.pollTimeout() ?? null };
      case 'query':
        return { locks: engine.query(now, step.prefix ?? '').map(lockJson) };
      case 'stats':
        return snakeKeys(engine.stats());
      case 'counts':
        return { locks: engine.liveLocks(), leases: engine.liveLeases(), waiting: engine.waiting() };
      case 'ceiling':
        return { ceiling: this.persisted };
      case 'grace':
        return { ms_left: engine.graceLeft(now), case: engine.graceCase() };
      case 'horizon':
        return this.horizonJson();
      case 'restart':
        if (step.no_boot) this.boot = null;
        // The system clock of that boot reads monotonic_ms now, at this step's time.
        else if (step.boot) this.boot = [step.boot.id, step.boot.monotonic_ms - now];
        if (step.kind === 'crash') {
          this.engine = new wasm.WasmEngine(this.config, SEED, 'crashed', this.persisted, undefined, now, ...this.bootArgs(now),
            this.horizon ?? undefined);
        } else if (step.kind === 'clean') {
          const snapshot = engine.snapshot(now);
          this.engine = new wasm.WasmEngine(this.config, SEED, 'clean', this.persisted, snapshot, now, ...this.bootArgs(now));
        } else {
          throw new Error(`unknown restart kind ${step.kind}`);
        }
        return {};
      default:
        throw new Error(`unknown op ${step.op}`);
    }
  }
}

export function lockJson(lock) {
  return {
    name: lock.name,
    delay_ms_left: lock.delayMsLeft,
    holders: lock.holders.map((h) => ({ token: h.token, mode: h.mode, owner: h.owner ?? null, ms_left: h.msLeft, client: h.client })),
    waiters: lock.waiters.map((w) => ({
      waiter: w.waiter, position: w.position, mode: w.mode, owner: w.owner ?? null, client: w.client, ms_left: w.msLeft,
    })),
  };
}

const EVENT_FIELDS = {
  granted: ['name', 'token', 'waiter', 'client', 'deadline_ms'],
  wait_timed_out: ['name', 'waiter', 'client', 'waited_ms'],
  expired: ['name', 'token', 'owner', 'client'],
  stolen: ['name', 'token', 'owner', 'client', 'by_token'],
};

function eventJson(raw) {
  const event = { type: raw.kind };
  const snake = snakeKeys(raw);
  for (const field of EVENT_FIELDS[raw.kind]) event[field] = snake[field] ?? null;
  return event;
}

function snakeKeys(object) {
  const out = {};
  for (const [key, value] of Object.entries(object)) out[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = value;
  return out;
}
