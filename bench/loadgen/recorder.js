'use strict';
/**
 * Finds the publisher's markers in what subscribers receive and records latencies.
 *
 * Every benchmark payload carries `m<seq>t<microseconds>e`: the message's sequence number
 * and the wall-clock time at which the publisher sent it. Scanning raw received text for
 * the marker works the same for every transport and framing, so no per-server parsing of
 * events is needed on the hot path.
 */

const { performance } = require('perf_hooks');

const MARKER = /m(\d+)t(\d+)e/g;
const CARRY = 48; // longer than any marker, so a marker split across two reads is found
const MAX_SAMPLES = 8e6; // 64 MB of latencies at most

/** Wall-clock time in microseconds, comparable across processes on this machine. */
function nowUs() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** Builds a payload of about `size` bytes carrying the marker. */
function payload(seq, size) {
  const marker = `m${seq}t${nowUs()}e`;
  return size > marker.length ? marker + ' ' + 'x'.repeat(size - marker.length - 1) : marker;
}

class Recorder {
  constructor() {
    this.reset(1);
  }

  /** Start a measurement window expecting about `capacity` deliveries. */
  reset(capacity) {
    // Bounded: past it, deliveries are still counted (`dropped`), not timed.
    this.lat = new Float64Array(Math.max(1, Math.min(capacity, MAX_SAMPLES)));
    this.count = 0;
    this.dropped = 0; // deliveries beyond capacity (still counted in total)
    this.total = 0;
    this.perSeq = new Map();
    this.firstUs = 0;
    this.lastUs = 0;
  }

  /**
   * Scan one piece of received text for markers.
   * @param {{carry:string}} sub  the subscriber; its `carry` keeps the tail of the last piece
   * @param {string} text
   */
  scan(sub, text) {
    const hay = sub.carry ? sub.carry + text : text;
    MARKER.lastIndex = 0;
    let m;
    let end = -1;
    let now = 0;
    while ((m = MARKER.exec(hay)) !== null) {
      if (now === 0) now = nowUs();
      end = MARKER.lastIndex;
      const seq = +m[1];
      const latency = (now - +m[2]) / 1000; // milliseconds
      if (this.count < this.lat.length) this.lat[this.count++] = latency;
      else this.dropped++;
      this.total++;
      this.perSeq.set(seq, (this.perSeq.get(seq) || 0) + 1);
      if (this.firstUs === 0) this.firstUs = now;
      this.lastUs = now;
    }
    const rest = end >= 0 ? hay.slice(end) : hay;
    sub.carry = rest.length > CARRY ? rest.slice(rest.length - CARRY) : rest;
  }

  /** Percentiles (milliseconds) of the recorded latencies. */
  percentiles() {
    return percentilesOf(this.lat, this.count);
  }
}

/** Latencies (ms) of something other than deliveries, e.g. request answers. */
class Samples {
  constructor(capacity) {
    this.values = new Float64Array(Math.max(1, capacity));
    this.count = 0;
  }

  push(ms) {
    if (this.count < this.values.length) this.values[this.count++] = ms;
  }

  percentiles() {
    return percentilesOf(this.values, this.count);
  }
}

/** p50, p99 and max of the first `n` values (sorted in place). */
function percentilesOf(values, n) {
  if (n === 0) return { p50: null, p99: null, max: null };
  const sorted = values.subarray(0, n).sort();
  const at = (q) => sorted[Math.min(n - 1, Math.floor(q * n))];
  return { p50: at(0.5), p99: at(0.99), max: sorted[n - 1] };
}

module.exports = { Recorder, Samples, nowUs, payload };
