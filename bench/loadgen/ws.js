'use strict';
/**
 * The client side of RFC 6455 that the load generator needs: the upgrade request headers,
 * an incremental frame parser for what servers send (unmasked), and masked client frames.
 */

const crypto = require('crypto');

const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** Headers of a WebSocket upgrade request. */
function upgradeHeaders() {
  return {
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
  };
}

/**
 * A masked client frame (clients must mask every frame they send).
 * @param {number} opcode
 * @param {Buffer} payload
 * @returns {Buffer}
 */
function clientFrame(opcode, payload) {
  const len = payload.length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(6);
    header[1] = 0x80 | len;
  } else if (len < 65536) {
    header = Buffer.alloc(8);
    header[1] = 0x80 | 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(14);
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = 0x80 | opcode;
  const mask = crypto.randomBytes(4);
  mask.copy(header, header.length - 4);
  const masked = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i] ^ mask[i & 3];
  return Buffer.concat([header, masked]);
}

/** Parses the frames a server sends; fragments of a message are joined. */
class FrameParser {
  /**
   * @param {(opcode:number, payload:Buffer) => void} onFrame  one complete message or control frame
   */
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.buf = null;
    this.fragments = [];
    this.fragOpcode = 0;
  }

  /** @param {Buffer} data */
  feed(data) {
    if (this.buf !== null) data = Buffer.concat([this.buf, data]);
    this.buf = null;
    let pos = 0;
    while (data.length - pos >= 2) {
      const b0 = data[pos];
      const b1 = data[pos + 1];
      let len = b1 & 0x7f;
      let off = pos + 2;
      if (len === 126) {
        if (data.length - pos < 4) break;
        len = data.readUInt16BE(pos + 2);
        off = pos + 4;
      } else if (len === 127) {
        if (data.length - pos < 10) break;
        len = Number(data.readBigUInt64BE(pos + 2));
        off = pos + 10;
      }
      const masked = (b1 & 0x80) !== 0;
      const maskOff = off;
      if (masked) off += 4;
      if (data.length < off + len) break;
      let payload = data.subarray(off, off + len);
      if (masked) {
        const m = data.subarray(maskOff, maskOff + 4);
        payload = Buffer.from(payload);
        for (let i = 0; i < payload.length; i++) payload[i] ^= m[i & 3];
      }
      pos = off + len;
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      if (opcode >= 0x8) {
        this.onFrame(opcode, payload);
      } else if (opcode !== 0 && fin) {
        this.onFrame(opcode, payload);
      } else {
        if (opcode !== 0) this.fragOpcode = opcode;
        this.fragments.push(Buffer.from(payload));
        if (fin) {
          const whole = Buffer.concat(this.fragments);
          this.fragments = [];
          this.onFrame(this.fragOpcode, whole);
        }
      }
    }
    if (pos < data.length) this.buf = data.subarray(pos);
  }
}

module.exports = { upgradeHeaders, clientFrame, FrameParser, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG };
