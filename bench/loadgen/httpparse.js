'use strict';
/**
 * A minimal incremental HTTP/1.1 response parser for the load generator.
 *
 * It handles what the servers under test send: a status line and headers, then a body
 * framed by Content-Length, by chunked transfer coding, or by the connection closing.
 * Body bytes are handed on as they arrive, so that streaming responses (SSE, XHR
 * streaming) are seen without waiting for the response to end.
 */

const CRLFCRLF = Buffer.from('\r\n\r\n');

class ResponseParser {
  /**
   * @param {object} handlers
   * @param {(status:number, headers:Object<string,string>) => void} handlers.onHeaders
   * @param {(body:Buffer) => void} handlers.onBody  a piece of the decoded body
   * @param {() => void} handlers.onEnd  the response is complete
   */
  constructor(handlers) {
    this.h = handlers;
    this.reset();
  }

  /** Expect a new response on the same (keep-alive) connection. */
  reset() {
    this.state = 'head';
    this.buf = null;
    this.remaining = -1; // bytes left in the body (length framing) or in the current chunk
    this.chunked = false;
    this.status = 0;
    this.headers = null;
  }

  /**
   * Feed bytes read from the socket.
   * Returns the bytes left over after a 101 Switching Protocols (they belong to the new
   * protocol), or null.
   * @param {Buffer} data
   * @returns {Buffer|null}
   */
  feed(data) {
    if (this.buf !== null && this.buf.length) {
      data = Buffer.concat([this.buf, data]);
    }
    this.buf = null;
    let pos = 0;
    while (pos < data.length) {
      if (this.state === 'head') {
        const end = data.indexOf(CRLFCRLF, pos);
        if (end < 0) {
          this.buf = data.subarray(pos);
          return null;
        }
        this._parseHead(data.latin1Slice(pos, end));
        pos = end + 4;
        this.h.onHeaders(this.status, this.headers);
        if (this.status === 101) {
          this.state = 'upgraded';
          return data.subarray(pos);
        }
        if (this.chunked) {
          this.state = 'chunksize';
        } else if (this.remaining >= 0) {
          this.state = 'length';
          if (this.remaining === 0) this._end();
        } else if (this.status === 204 || this.status === 304) {
          this._end();
        } else {
          this.state = 'close';
        }
      } else if (this.state === 'length' || this.state === 'chunk') {
        const take = Math.min(this.remaining, data.length - pos);
        if (take > 0) this.h.onBody(data.subarray(pos, pos + take));
        pos += take;
        this.remaining -= take;
        if (this.remaining === 0) {
          if (this.state === 'length') this._end();
          else this.state = 'chunkcrlf';
        }
      } else if (this.state === 'chunksize' || this.state === 'chunkcrlf' || this.state === 'trailer') {
        const eol = data.indexOf(10, pos); // '\n'
        if (eol < 0) {
          this.buf = data.subarray(pos);
          return null;
        }
        const line = data.latin1Slice(pos, eol).trim();
        pos = eol + 1;
        if (this.state === 'chunkcrlf') {
          this.state = 'chunksize';
        } else if (this.state === 'trailer') {
          if (line === '') this._end();
        } else {
          const size = parseInt(line.split(';')[0], 16);
          if (size === 0) this.state = 'trailer';
          else {
            this.remaining = size;
            this.state = 'chunk';
          }
        }
      } else if (this.state === 'close') {
        this.h.onBody(data.subarray(pos));
        pos = data.length;
      } else {
        // 'done' or 'upgraded': stray bytes, ignored
        return data.subarray(pos);
      }
    }
    return null;
  }

  _parseHead(text) {
    const lines = text.split('\r\n');
    this.status = parseInt(lines[0].split(' ')[1], 10);
    const headers = {};
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(':');
      if (colon > 0) {
        const name = lines[i].slice(0, colon).trim().toLowerCase();
        const value = lines[i].slice(colon + 1).trim();
        headers[name] = name in headers ? headers[name] + '\n' + value : value;
      }
    }
    this.headers = headers;
    this.chunked = /chunked/i.test(headers['transfer-encoding'] || '');
    this.remaining = 'content-length' in headers ? parseInt(headers['content-length'], 10) : -1;
  }

  _end() {
    this.state = 'done';
    this.h.onEnd();
  }
}

/**
 * Serialise one HTTP/1.1 request.
 * @param {string} method
 * @param {string} path
 * @param {Object<string,string>} headers
 * @param {string|Buffer} [body]
 * @returns {Buffer}
 */
function buildRequest(method, path, headers, body) {
  let head = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
  for (const [name, value] of Object.entries(headers || {})) head += `${name}: ${value}\r\n`;
  if (body !== undefined && body !== null) {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
    head += `Content-Length: ${bytes.length}\r\n\r\n`;
    return Buffer.concat([Buffer.from(head, 'latin1'), bytes]);
  }
  if (method === 'POST') head += 'Content-Length: 0\r\n';
  return Buffer.from(head + '\r\n', 'latin1');
}

module.exports = { ResponseParser, buildRequest };
