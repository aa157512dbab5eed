/**
 * An HTTP/1.1 client exactly as strict as ESXi's loader (vmware/esx-boot uefi/efiutils/httpfile.c): the
 * length of every answer comes from its Content-Length header ("No http Content-Length header" is a
 * protocol error there), the body is read as exactly that many bytes, and anything but 200 is a failure
 * (redirects are followed, up to 4). An answer framed any other way (chunked, or delimited by closing the
 * connection) is refused, where curl, fetch and browsers would accept it. Used by the mboot walk
 * (demo/mboot.ts) and the tests.
 */
import { connect } from "node:net";
import { PeerError } from "../errors.ts";

export interface StrictResponse {
  status: number;
  headers: Map<string, string>;
  /** Empty for HEAD. */
  body: Uint8Array;
  /** The Content-Length the answer gave. */
  length: number;
}

/** An answer the loader would refuse, or no answer: what the strict client says. */
export class StrictHttpError extends PeerError {
  readonly status: number | undefined;
  constructor(message: string, status: number | undefined) {
    super("E_HTTP_PEER", message);
    this.status = status;
  }
}

const MAX_REDIRECTS = 4;
const MAX_HEADER = 64 * 1024;

/**
 * HEAD (size only) or GET (the whole body), as mboot does; `userAgent` is mboot's own by default. With
 * `range` ([start, end), as iPXE's SAN reads of a disc image), the answer must be a 206 for exactly those
 * bytes.
 */
export async function strictFetch(method: "HEAD" | "GET", url: string, opts: { userAgent?: string; timeoutMs?: number; range?: [number, number] } = {}): Promise<StrictResponse> {
  let target = url;
  for (let hop = 0; ; hop++) {
    const r = await once(method, target, opts.userAgent ?? "esx-boot/2.0", opts.timeoutMs ?? 30_000, opts.range);
    if ([301, 302, 307, 308].includes(r.status)) {
      const loc = r.headers.get("location");
      if (!loc) throw new StrictHttpError(`${target}: redirect with no Location header`, r.status);
      if (hop >= MAX_REDIRECTS) throw new StrictHttpError(`${url}: more than ${MAX_REDIRECTS} redirects`, r.status);
      target = new URL(loc, target).toString();
      continue;
    }
    if (opts.range) {
      const [start, end] = opts.range;
      const cr = r.headers.get("content-range");
      if (r.status !== 206) throw new StrictHttpError(`${target}: a Range request answered ${r.status}, not 206`, r.status);
      if (!cr || !new RegExp(`^bytes ${start}-${end - 1}/\\d+$`).test(cr)) throw new StrictHttpError(`${target}: Content-Range ${JSON.stringify(cr ?? null)} is not bytes ${start}-${end - 1}/…`, r.status);
      if (r.length !== end - start) throw new StrictHttpError(`${target}: Content-Length ${r.length} for a range of ${end - start} bytes`, r.status);
      return r;
    }
    if (r.status !== 200) throw new StrictHttpError(`${target}: ${method} answered ${r.status}`, r.status);
    return r;
  }
}

// --- internal ---

function once(method: string, url: string, userAgent: string, timeoutMs: number, range: [number, number] | undefined): Promise<StrictResponse> {
  const u = new URL(url);
  if (u.protocol !== "http:") return Promise.reject(new StrictHttpError(`${url}: only http:// is supported`, undefined));
  return new Promise((resolve, reject) => {
    const sock = connect({ host: u.hostname, port: Number(u.port || 80) });
    let pre = Buffer.alloc(0);
    let head: { status: number; headers: Map<string, string>; length: number } | undefined;
    // The body goes straight into a buffer of Content-Length bytes: a module of hundreds of MB is copied once.
    let body: Uint8Array | undefined;
    let got = 0;
    let done = false;
    const fail = (msg: string, status?: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      reject(new StrictHttpError(`${url}: ${msg}`, status));
    };
    // An idle timeout: a big body on a slow link may take long, a silent server may not.
    let timer = setTimeout(() => fail(`nothing received for ${timeoutMs} ms`), timeoutMs);
    const alive = () => {
      clearTimeout(timer);
      timer = setTimeout(() => fail(`nothing received for ${timeoutMs} ms${head ? ` (${got} of ${head.length} bytes)` : ""}`), timeoutMs);
    };
    const take = (chunk: Uint8Array) => {
      if (!head || chunk.length === 0) return;
      const want = method === "HEAD" ? 0 : head.length;
      if (got + chunk.length > want) return fail(method === "HEAD" ? `${chunk.length} bytes of body after a HEAD answer` : `${got + chunk.length - want} bytes more than Content-Length ${head.length}`, head.status);
      body!.set(chunk, got);
      got += chunk.length;
    };
    const finish = () => {
      if (!head || done) return;
      const want = method === "HEAD" ? 0 : head.length;
      if (got < want) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ status: head.status, headers: head.headers, length: head.length, body: body ?? new Uint8Array(0) });
    };
    sock.on("connect", () => {
      const r = range ? `Range: bytes=${range[0]}-${range[1] - 1}\r\n` : "";
      sock.write(`${method} ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUser-Agent: ${userAgent}\r\nAccept: */*\r\n${r}\r\n`);
    });
    sock.on("data", (chunk: Buffer) => {
      alive();
      if (head) {
        take(chunk);
        return finish();
      }
      pre = Buffer.concat([pre, chunk]);
      const end = pre.indexOf("\r\n\r\n");
      if (end < 0) {
        if (pre.length > MAX_HEADER) fail("header larger than 64 KiB");
        return;
      }
      const lines = pre.subarray(0, end).toString("latin1").split("\r\n");
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
      if (!/^\d+$/.test(cl) || Number(cl) > Number.MAX_SAFE_INTEGER) return fail(`Content-Length ${JSON.stringify(cl)} is not a number`, status);
      head = { status, headers, length: Number(cl) };
      if (method !== "HEAD") {
        if (head.length > 8 * 1024 ** 3) return fail(`Content-Length ${head.length} is beyond any boot file`, status);
        body = new Uint8Array(head.length);
      }
      take(pre.subarray(end + 4));
      pre = Buffer.alloc(0);
      finish();
    });
    sock.on("error", (err) => fail(err.message));
    sock.on("close", () => {
      clearTimeout(timer);
      if (!done) fail(head ? `connection closed after ${got} of ${head.length} bytes` : "connection closed before a complete header", head?.status);
    });
  });
}
