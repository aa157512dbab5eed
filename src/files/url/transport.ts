/** The URL source's HTTP clients behind one small interface: undici (Node) or Bun's native fetch. */
import type { Dispatcher } from "../../net/undici.ts";

/** What the source needs of an HTTP client: a GET with headers, status, headers, the body or nothing. */
export interface Transport {
  get(url: string, headers: Record<string, string>): Promise<RangeResponse>;
  close(): Promise<void>;
}

export interface RangeResponse {
  status: number;
  header(name: string): string | undefined;
  bytes(): Promise<Uint8Array>;
  discard(): Promise<void>;
}

/** undici is loaded only when used (Node; NETBOOT_URL_CLIENT=undici under Bun): the executable leaves it out. */
export async function undiciTransport(maxConcurrent: number, timeoutMs: number): Promise<Transport> {
  const { Agent, interceptors, request } = await import("../../net/undici.ts");
  const agent = new Agent({ connections: maxConcurrent + 2, keepAliveTimeout: 10_000, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  // Object stores and mirrors redirect (signed URLs, CDNs): follow up to 5.
  const dispatcher: Dispatcher = agent.compose(interceptors.redirect({ maxRedirections: 5 }));
  return {
    async get(url, headers) {
      const res = await request(url, { dispatcher, method: "GET", headers });
      return {
        status: res.statusCode,
        header: (name) => {
          const v = res.headers[name];
          return Array.isArray(v) ? v[0] : v;
        },
        bytes: async () => new Uint8Array(await res.body.arrayBuffer()),
        discard: () => res.body.dump().catch(() => {}),
      };
    },
    close: () => agent.close(),
  };
}

/** Bun's fetch (native HTTP client, pooled keep-alive connections); follows redirects like undici above. */
export function fetchTransport(timeoutMs: number): Transport {
  return {
    async get(url, headers) {
      const res = await fetch(url, { headers, redirect: "follow", signal: AbortSignal.timeout(timeoutMs) });
      return {
        status: res.status,
        header: (name) => res.headers.get(name) ?? undefined,
        bytes: async () => new Uint8Array(await res.arrayBuffer()),
        discard: async () => {
          await res.body?.cancel().catch(() => {});
        },
      };
    },
    close: async () => {},
  };
}

export { describeNetError } from "../../net/fetch.ts";
