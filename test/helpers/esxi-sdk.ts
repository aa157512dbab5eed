/**
 * The installed ESXi's side of "done", played by the test harness: HTTPS on port 443 of the host's
 * address answering the vSphere API's RetrieveServiceContent at /sdk with a build, as ESXi's hostd does
 * (a mock: there is no ESXi here; drive/verify.ts is the client). Run as a script in the host's namespace:
 *   bun esxi-sdk.ts IP BUILD CERT KEY
 */
export function sdkAnswer(build: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>' +
    '<RetrieveServiceContentResponse xmlns="urn:vim25"><returnval><rootFolder type="Folder">ha-folder-root</rootFolder>' +
    `<about><name>VMware ESXi</name><fullName>VMware ESXi 8.0.2 build-${build}</fullName><vendor>VMware, Inc.</vendor><version>8.0.2</version><build>${build}</build><apiType>HostAgent</apiType></about>` +
    "</returnval></RetrieveServiceContentResponse></soapenv:Body></soapenv:Envelope>"
  );
}

export function startSdk(ip: string, build: string, tls: { cert: string; key: string }, port = 443) {
  return Bun.serve({
    hostname: ip,
    port,
    tls,
    async fetch(req) {
      const url = new URL(req.url);
      const body = await req.text();
      if (req.method !== "POST" || url.pathname !== "/sdk" || !body.includes("RetrieveServiceContent")) return new Response("not found", { status: 404 });
      return new Response(sdkAnswer(build), { headers: { "content-type": "text/xml; charset=utf-8" } });
    },
  });
}

if (import.meta.main) {
  const [ip, build, cert, key] = process.argv.slice(2);
  startSdk(ip!, build!, { cert: await Bun.file(cert!).text(), key: await Bun.file(key!).text() });
  process.stdout.write(`sdk on ${ip}:443, build ${build}\n`);
}
