/**
 * What netboot's fetch clients share (the URL source, Redfish, the installed ESXi's /sdk probe): TLS
 * settings in the form each runtime's fetch takes, and a network error in words.
 */

export interface TlsSettings {
  /** A CA bundle (PEM) the peer's certificate is checked against, beside the system's. */
  ca?: string;
  rejectUnauthorized: boolean;
}

/**
 * The fetch options that carry `tls`: Bun's fetch takes `tls`; Node's takes an undici dispatcher, made
 * here and handed back to close when done.
 */
export async function tlsFetchOptions(url: string, tls: TlsSettings): Promise<{ options: Record<string, unknown>; close(): Promise<void> }> {
  if (!url.startsWith("https:")) return { options: {}, close: async () => {} };
  if (typeof Bun !== "undefined") return { options: { tls }, close: async () => {} };
  const { Agent } = await import("./undici.ts");
  const agent = new Agent({ connect: tls });
  return { options: { dispatcher: agent }, close: () => agent.close() };
}

/** A network error in words: the code of its cause where the message does not say it. */
export function describeNetError(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e?.cause?.code ?? e?.code;
  const msg = e?.cause?.message ?? e?.message ?? String(err);
  return code && !msg.includes(code) ? `${code} ${msg}` : msg;
}
