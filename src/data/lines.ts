/**
 * Streaming line reader: the file is read in fixed-size chunks and decoded incrementally, so a
 * 100M-line log never exists as one string. Lines are handed to a synchronous callback (one
 * promise per chunk, not per line, keeps the per-line cost low).
 */

import { fileError } from "./dataset.ts";

const CHUNK_BYTES = 1 << 20;

/**
 * Calls `onLine(text, lineNo)` for every line of `path` (1-based numbers). A trailing "\r" (CRLF
 * files) and a UTF-8 byte-order mark are removed; nothing else is altered. Returns the number of
 * lines. A final line without "\n" is still delivered; an empty file delivers none.
 */
export async function forEachLine(
  path: string,
  onLine: (text: string, lineNo: number) => void,
  chunkBytes = CHUNK_BYTES,
): Promise<number> {
  const file = await openFile(path);
  try {
    return await splitChunks(path, file, onLine, chunkBytes);
  } finally {
    file.close();
  }
}

/** The text of one read of at most `bytes` bytes from the start of `path`, without a BOM. */
export async function readHead(path: string, bytes: number): Promise<string> {
  const file = await openFile(path);
  try {
    const buf = new Uint8Array(bytes);
    const n = (await readChunk(path, file, buf)) ?? 0;
    return new TextDecoder().decode(buf.subarray(0, n)).replace(/^\uFEFF/, "");
  } finally {
    file.close();
  }
}

async function openFile(path: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { read: true });
  } catch (e) {
    throw fileError(path, "read", e);
  }
}

/**
 * One read, with failures named by `path`; opening a directory succeeds on Linux and only its
 * first read fails, so this is where "a directory given as a file" is caught.
 */
async function readChunk(path: string, file: Deno.FsFile, buf: Uint8Array): Promise<number | null> {
  try {
    return await file.read(buf);
  } catch (e) {
    throw fileError(path, "read", e);
  }
}

async function splitChunks(
  path: string,
  file: Deno.FsFile,
  onLine: (text: string, lineNo: number) => void,
  chunkBytes: number,
): Promise<number> {
  const decoder = new TextDecoder("utf-8");
  const buf = new Uint8Array(chunkBytes);
  let lineNo = 0;
  let carry = "";
  const emit = (raw: string) => {
    lineNo++;
    let text = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (lineNo === 1 && text.startsWith("\uFEFF")) text = text.slice(1);
    onLine(text, lineNo);
  };
  for (;;) {
    const n = await readChunk(path, file, buf);
    if (n === null) break;
    // Search only the new text for "\n": a very long line spanning many chunks stays linear.
    const from = carry.length;
    const text = carry + decoder.decode(buf.subarray(0, n), { stream: true });
    let start = 0;
    let nl = text.indexOf("\n", from);
    while (nl !== -1) {
      emit(text.slice(start, nl));
      start = nl + 1;
      nl = text.indexOf("\n", start);
    }
    carry = text.slice(start);
  }
  carry += decoder.decode();
  if (carry.length > 0) emit(carry);
  return lineNo;
}

/** The text lines of a byte stream (a child process's output), without their "\n". */
export async function* streamLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
    }
  }
  if (buffered) yield buffered;
}
