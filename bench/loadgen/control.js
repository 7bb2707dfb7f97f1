'use strict';
/**
 * Control-plane HTTP requests of the generator (publishing, joining, side-channel posts),
 * through Node's http module with a small keep-alive pool. These are few compared with
 * subscriber traffic, so convenience matters more here than speed.
 */

const http = require('http');

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/**
 * @param {{host:string, port:number}} target
 * @param {string} method
 * @param {string} path
 * @param {Object<string,string>} [headers]
 * @param {string} [body]
 * @param {number} [timeoutMs]
 * @returns {Promise<{status:number, headers:object, body:string}>}
 */
function httpRequest(target, method, path, headers = {}, body = undefined, timeoutMs = 60000) {
  if (body !== undefined) {
    // An explicit length: some servers mishandle chunked request bodies.
    body = Buffer.from(body);
    headers = { ...headers, 'Content-Length': body.length };
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: target.host, port: target.port, method, path, headers, agent, timeout: timeoutMs },
      (res) => {
        const parts = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts).toString() }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout ${method} ${path}`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Form-encode `fields`, an array of [name, value] pairs (names may repeat). */
function form(fields) {
  return fields.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
}

/** Run `task(i)` for i in [0, count) with at most `limit` running at once. */
async function pool(count, limit, task) {
  let next = 0;
  const workers = [];
  for (let w = 0; w < Math.min(limit, count); w++) {
    workers.push((async () => {
      while (next < count) {
        const i = next++;
        await task(i);
      }
    })());
  }
  await Promise.all(workers);
}

module.exports = { httpRequest, form, pool, agent };
