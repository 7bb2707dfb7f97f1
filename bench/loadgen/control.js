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

module.exports = { httpRequest, agent };
