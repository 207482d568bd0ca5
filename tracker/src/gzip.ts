/**
 * gzip for recording chunks without a bundled compressor: the browser's CompressionStream, which
 * is asynchronous, and a synchronous fallback that wraps the bytes uncompressed ("stored" deflate
 * blocks) in a valid gzip stream — for what must leave at once when the page is hidden, and for
 * browsers without CompressionStream.
 */

export const canCompress = typeof CompressionStream === 'function';

const encode = (text: string): Uint8Array => new TextEncoder().encode(text);

/** gzip of the UTF-8 of `text`, compressed by the browser; rejects when it cannot. */
export const gzip = (text: string): Promise<Uint8Array> =>
  new Response(new Blob([text]).stream().pipeThrough(new CompressionStream('gzip')))
    .arrayBuffer()
    .then((buffer) => new Uint8Array(buffer));

/** gzip of the UTF-8 of `text` in stored blocks: no compression, no waiting. */
export function gzipStored(text: string): Uint8Array {
  const data = encode(text);
  const n = data.length;
  const out = new Uint8Array(18 + n + 5 * (Math.ceil(n / 65535) || 1));
  out.set([31, 139, 8, 0, 0, 0, 0, 0, 0, 255]); // magic, deflate, no flags, no mtime, unknown OS
  let at = 10;
  let i = 0;
  do {
    const len = Math.min(n - i, 65535);
    // BFINAL (last block) and BTYPE 00 (stored), then LEN and its one's complement, little-endian.
    out.set([+(i + len >= n), len & 255, len >> 8, ~len & 255, (~len >> 8) & 255], at);
    out.set(data.subarray(i, i + len), at + 5);
    at += 5 + len;
    i += len;
  } while (i < n);
  let crc = -1;
  for (i = 0; i < n; i++) {
    crc ^= data[i];
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  const trailer = new DataView(out.buffer, at);
  trailer.setUint32(0, ~crc, true);
  trailer.setUint32(4, n, true);
  return out;
}
