'use strict';
// The in-process engine from JavaScript: acquire + release pairs per second through the addon
// (the Engine wrapper: a clock read, option conversion and the napi call per operation), and
// the same through the raw native class. Prints CSV.

const path = require('node:path');
const { performance } = require('node:perf_hooks');
const fencelock = require(path.join(__dirname, '..', '..', 'node'));
const { NativeEngine } = require(path.join(__dirname, '..', '..', 'node', 'lib', 'native.js'));

const PAIRS = Number(process.env.PAIRS ?? 500000);
const RUNS = Number(process.env.RUNS ?? 5);
const NAMES = Array.from({ length: 1024 }, (_, i) => `lock:${i}`);

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function wrapper() {
  const engine = new fencelock.Engine();
  const options = { ttl: 30000 };
  const start = performance.now();
  for (let i = 0; i < PAIRS; i += 1) {
    const name = NAMES[i & 1023];
    const { token } = engine.acquire(name, options);
    engine.release(name, token);
  }
  return PAIRS / ((performance.now() - start) / 1000);
}

function raw() {
  const engine = new NativeEngine({}, Buffer.alloc(16));
  const start = performance.now();
  for (let i = 0; i < PAIRS; i += 1) {
    const name = NAMES[i & 1023];
    const now = Math.floor(performance.now());
    const { token } = engine.acquire(now, name, 30000, null);
    engine.release(now, name, token);
  }
  return PAIRS / ((performance.now() - start) / 1000);
}

console.log(`case (median of ${RUNS} runs of ${PAIRS} pairs),acquire_release_pairs_per_s,us_per_pair`);
for (const [label, run] of [['Engine (wrapper)', wrapper], ['NativeEngine (raw addon)', raw]]) {
  run(); // warm up
  const rate = median(Array.from({ length: RUNS }, run));
  console.log(`${label},${rate.toFixed(0)},${(1e6 / rate).toFixed(2)}`);
}
