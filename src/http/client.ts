/**
 * An HTTP/1.1 client exactly as strict as ESXi's loader (vmware/esx-boot uefi/efiutils/httpfile.c): the
 * length of every answer comes from its Content-Length header ("No http Content-Length header" is a
 * protocol error there), the body is read as exactly that many bytes, and anything but 200 is a failure
 * (redirects are followed, up to 4). An answer framed any other way (chunked, or delimited by closing the
 * connection) is refused, where curl, fetch and browsers would accept it. Used by the mboot walk
 * (demo/mboot.ts) and the tests.
 */
import { connect } from "node:net";

export interface StrictResponse {
  status: number;
  headers: Map<string, string>;
  /** Empty for HEAD. */
  body: Uint8Array;
  /** The Content-Length the answer gave. */
  length: number;
}

export class StrictHttpError extends Error {
  readonly status: number | undefined;
  constructor(message: string, status: number | undefined) {
    super(message);
    this.status = status;
  }
}

const MAX_REDIRECTS = 4;
const MAX_HEADER = 64 * 1024;

/** HEAD (size only) or GET (the whole body), as mboot does; `userAgent` is mboot's own by default. */
export async function strictFetch(method: "HEAD" | "GET", url: string, opts: { userAgent?: string; timeoutMs?: number } = {}): Promise<StrictResponse> {
  let target = url;
  for (let hop = 0; ; hop++) {
    const r = await once(method, target, opts.userAgent ?? "esx-boot/2.0", opts.timeoutMs ?? 30_000);
    if ([301, 302, 307, 308].includes(r.status)) {
      const loc = r.headers.get("location");
      if (!loc) throw new StrictHttpError(`${target}: redirect with no Location header`, r.status);
      if (hop >= MAX_REDIRECTS) throw new StrictHttpError(`${url}: more than ${MAX_REDIRECTS} redirects`, r.status);
      target = new URL(loc, target).toString();
      continue;
    }
    if (r.status !== 200) throw new StrictHttpError(`${target}: ${method} answered ${r.status}`, r.status);
    return r;
  }
}

// --- internal ---

function once(method: string, url: string, userAgent: string, timeoutMs: number): Promise<StrictResponse> {
  const u = new URL(url);
  if (u.protocol !== "http:") return Promise.reject(new StrictHttpError(`${url}: only http:// is supported`, undefined));
  return new Promise((resolve, reject) => {
    const sock = connect({ host: u.hostname, port: Number(u.port || 80) });
    let buf = Buffer.alloc(0);
    let head: { status: number; headers: Map<string, string>; length: number; bodyAt: number } | undefined;
    let done = false;
    const fail = (msg: string, status?: number) => {
      if (done) return;
      done = true;
      sock.destroy();
      reject(new StrictHttpError(`${url}: ${msg}`, status));
    };
    const timer = setTimeout(() => fail(`no complete answer within ${timeoutMs} ms`), timeoutMs);
    const finish = () => {
      if (!head || done) return;
      const want = method === "HEAD" ? 0 : head.length;
      if (buf.length - head.bodyAt < want) return;
      if (buf.length - head.bodyAt > want) return fail(`${buf.length - head.bodyAt - want} bytes more than Content-Length ${head.length}`, head.status);
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ status: head.status, headers: head.headers, length: head.length, body: new Uint8Array(buf.subarray(head.bodyAt, head.bodyAt + want)) });
    };
    sock.on("connect", () => {
      sock.write(`${method} ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUser-Agent: ${userAgent}\r\nAccept: */*\r\n\r\n`);
    });
    sock.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!head) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) {
          if (buf.length > MAX_HEADER) fail("header larger than 64 KiB");
          return;
        }
        const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
        if (!m) return fail(`not an HTTP/1.x status line: ${JSON.stringify(lines[0])}`);
        const status = Number(m[1]);
        const headers = new Map<string, string>();
        for (const l of lines.slice(1)) {
          const i = l.indexOf(":");
          if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
        }
        const te = headers.get("transfer-encoding");
        if (te !== undefined) return fail(`answer framed with Transfer-Encoding: ${te} (the loader reads Content-Length only)`, status);
        const cl = headers.get("content-length");
        if (cl === undefined) return fail("no Content-Length header (the loader's \"No http Content-Length header\")", status);
        if (!/^\d+$/.test(cl)) return fail(`Content-Length ${JSON.stringify(cl)} is not a number`, status);
        head = { status, headers, length: Number(cl), bodyAt: end + 4 };
      }
      finish();
    });
    sock.on("error", (err) => fail(err.message));
    sock.on("close", () => {
      clearTimeout(timer);
      if (!done) fail(head ? `connection closed after ${buf.length - head.bodyAt} of ${head.length} bytes` : "connection closed before a complete header", head?.status);
    });
  });
}
