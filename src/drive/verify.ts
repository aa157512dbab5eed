/**
 * Is the installed ESXi up, at the expected build? ESXi answers the vSphere API's unauthenticated
 * RetrieveServiceContent at https://HOST/sdk (vim25 SOAP, the call every vSphere client makes first, before
 * logging in), and its content's `about` names the build. This works with Secure Boot too, where ESXi 8
 * runs no %firstboot script (execInstalledOnly). The host's certificate is its own, self-signed at first
 * boot: it is not checked (nothing secret is sent; only the build is read).
 */
import { LIMITS } from "../config.ts";

const ENVELOPE =
  '<?xml version="1.0" encoding="UTF-8"?>' +
  '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
  '<soapenv:Body><RetrieveServiceContent xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent></soapenv:Body></soapenv:Envelope>';

export interface EsxiAbout {
  build: string;
  fullName: string | undefined;
}

/** The build the service at `url` ("https://10.77.0.11" or with a port) says it is, or why there is none yet. */
export async function probeEsxi(url: string): Promise<EsxiAbout | { error: string }> {
  const target = `${url.replace(/\/$/, "")}/sdk`;
  let dispatcher: { close(): Promise<void> } | undefined;
  try {
    const extra: Record<string, unknown> = {};
    if (target.startsWith("https:")) {
      if (typeof Bun !== "undefined") extra.tls = { rejectUnauthorized: false };
      else {
        const { Agent } = await import("../net/undici.ts");
        dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
        extra.dispatcher = dispatcher;
      }
    }
    const res = await fetch(target, {
      method: "POST",
      headers: { "content-type": "text/xml; charset=utf-8", soapaction: "urn:vim25/8.0" },
      body: ENVELOPE,
      signal: AbortSignal.timeout(LIMITS.drive.probeTimeoutMs),
      ...extra,
    } as RequestInit);
    const text = await res.text();
    const about = /<about\b[^>]*>([\s\S]*?)<\/about>/.exec(text)?.[1];
    const build = about ? /<build>([^<]*)<\/build>/.exec(about)?.[1] : undefined;
    if (!res.ok || !build) return { error: `${target}: ${res.status}${build ? "" : ", no about.build in the answer"}` };
    return { build: build.trim(), fullName: /<fullName>([^<]*)<\/fullName>/.exec(about!)?.[1] };
  } catch (err) {
    const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string } };
    return { error: `${target}: ${e.name === "TimeoutError" ? "no answer" : (e.cause?.code ?? e.code ?? e.message ?? String(err))}` };
  } finally {
    await dispatcher?.close();
  }
}
