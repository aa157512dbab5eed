/**
 * A Redfish service for tests (a mock: no Redfish emulator is packaged in Debian; sushy-tools is PyPI
 * only). It follows the DMTF schemas' shapes (ServiceRoot, SessionService, ComputerSystem with Boot and
 * the Reset action, Manager with VirtualMedia and its InsertMedia/EjectMedia actions), as sushy-tools'
 * templates do. What it does to the machine goes through `machine` (a record, or QEMU through QMP), and
 * Debian's redfishtool drives it too (test/bmc/redfish.test.ts), which keeps it honest.
 */
export interface MockMachine {
  power: "On" | "Off";
  reset(type: string): void | Promise<void>;
  insert(image: string): void | Promise<void>;
  eject(): void | Promise<void>;
}

export interface MockOptions {
  user: string;
  password: string;
  machine: MockMachine;
  /** No SessionService: clients must fall back to basic authentication. */
  sessions?: boolean;
  /** PATCH without the current ETag in If-Match is refused with 412 (as some BMCs do). */
  requireIfMatch?: boolean;
  /** Like sushy-tools: the override always reads back Continuous. */
  keepContinuous?: boolean;
  tls?: { cert: string; key: string };
  /** Where it listens (default 127.0.0.1, any free port). */
  host?: string;
  port?: number;
}

export interface MockCall {
  method: string;
  path: string;
  body: unknown;
  auth: "session" | "basic" | "none";
}

export interface RedfishMock {
  url: string;
  calls: MockCall[];
  boot: Record<string, unknown>;
  media: { Image: string | null; Inserted: boolean };
  sessions: Map<string, string>;
  stop(): void;
}

export function startRedfishMock(opts: MockOptions): RedfishMock {
  const calls: MockCall[] = [];
  const sessions = new Map<string, string>();
  const boot: Record<string, unknown> = { BootSourceOverrideEnabled: "Disabled", BootSourceOverrideTarget: "None", BootSourceOverrideMode: "UEFI", HttpBootUri: null };
  const media = { Image: null as string | null, Inserted: false };
  let etagN = 1;
  let nextSession = 1;
  const sys = "/redfish/v1/Systems/437XR1138R2";
  const mgr = "/redfish/v1/Managers/BMC";
  const cd = `${mgr}/VirtualMedia/Cd`;
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
  const error = (status: number, message: string) => json(status, { error: { code: "Base.1.8.GeneralError", message, "@Message.ExtendedInfo": [{ MessageId: "Base.1.8.GeneralError", Message: message }] } });

  const server = Bun.serve({
    port: opts.port ?? 0,
    hostname: opts.host ?? "127.0.0.1",
    ...(opts.tls ? { tls: opts.tls } : {}),
    async fetch(req) {
      const url = new URL(req.url);
      const path = url.pathname.replace(/\/$/, "") || "/";
      const text = req.method === "GET" || req.method === "DELETE" ? "" : await req.text();
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        return error(400, "malformed JSON");
      }
      const token = req.headers.get("x-auth-token");
      const basic = req.headers.get("authorization");
      const auth: MockCall["auth"] = token && sessions.has(token) ? "session" : basic === `Basic ${btoa(`${opts.user}:${opts.password}`)}` ? "basic" : "none";
      calls.push({ method: req.method, path, body: path.endsWith("/Sessions") ? "(credentials)" : body, auth });

      if (path === "/redfish" && req.method === "GET") return json(200, { v1: "/redfish/v1/" });
      if (path === "/redfish/v1" && req.method === "GET") {
        return json(200, {
          "@odata.id": "/redfish/v1/",
          "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
          Id: "RootService",
          RedfishVersion: "1.6.0",
          Systems: { "@odata.id": "/redfish/v1/Systems" },
          Managers: { "@odata.id": "/redfish/v1/Managers" },
          ...(opts.sessions !== false ? { SessionService: { "@odata.id": "/redfish/v1/SessionService" }, Links: { Sessions: { "@odata.id": "/redfish/v1/SessionService/Sessions" } } } : {}),
        });
      }
      if (opts.sessions !== false && path === "/redfish/v1/SessionService/Sessions" && req.method === "POST") {
        const b = body as { UserName?: string; Password?: string } | undefined;
        if (b?.UserName !== opts.user || b?.Password !== opts.password) return error(401, "invalid credentials");
        const id = String(nextSession++);
        const tok = crypto.randomUUID();
        sessions.set(tok, id);
        const loc = `/redfish/v1/SessionService/Sessions/${id}`;
        return json(201, { "@odata.id": loc, Id: id, UserName: b.UserName }, { "x-auth-token": tok, location: loc });
      }
      if (opts.sessions !== false && path === "/redfish/v1/SessionService" && req.method === "GET") {
        return json(200, { "@odata.id": "/redfish/v1/SessionService", Sessions: { "@odata.id": "/redfish/v1/SessionService/Sessions" } });
      }
      if (auth === "none") return error(401, "authentication required");
      const sessionMatch = path.match(/^\/redfish\/v1\/SessionService\/Sessions\/(\d+)$/);
      if (sessionMatch && req.method === "DELETE") {
        for (const [t, id] of sessions) if (id === sessionMatch[1]) sessions.delete(t);
        return new Response(null, { status: 204 });
      }
      if (path === "/redfish/v1/Systems" && req.method === "GET") return json(200, { "@odata.id": "/redfish/v1/Systems", Members: [{ "@odata.id": sys }], "Members@odata.count": 1 });
      const etag = `W/"${etagN}"`;
      if (path === sys && req.method === "GET") {
        return json(
          200,
          {
            "@odata.id": sys,
            "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
            "@odata.etag": etag,
            Id: "437XR1138R2",
            PowerState: opts.machine.power,
            Boot: { ...boot, ...(opts.keepContinuous && boot.BootSourceOverrideEnabled === "Once" ? { BootSourceOverrideEnabled: "Continuous" } : {}), "BootSourceOverrideTarget@Redfish.AllowableValues": ["None", "Pxe", "Cd", "Hdd", "UefiHttp", "BiosSetup"] },
            Actions: { "#ComputerSystem.Reset": { target: `${sys}/Actions/ComputerSystem.Reset`, "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle", "Nmi"] } },
            Links: { ManagedBy: [{ "@odata.id": mgr }] },
          },
          { etag },
        );
      }
      if (path === sys && req.method === "PATCH") {
        if (opts.requireIfMatch && req.headers.get("if-match") !== etag) return error(412, "If-Match does not match the current ETag");
        const b = (body as { Boot?: Record<string, unknown> } | undefined)?.Boot;
        if (!b) return error(400, "only Boot may be patched here");
        for (const [k, v] of Object.entries(b)) {
          if (!["BootSourceOverrideEnabled", "BootSourceOverrideTarget", "BootSourceOverrideMode", "HttpBootUri"].includes(k)) return error(400, `property ${k} is not writable`);
          boot[k] = v;
        }
        etagN++;
        return new Response(null, { status: 204 });
      }
      if (path === `${sys}/Actions/ComputerSystem.Reset` && req.method === "POST") {
        const type = (body as { ResetType?: string } | undefined)?.ResetType;
        if (!type || !["On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle", "Nmi"].includes(type)) return error(400, `ResetType ${type} is not allowed`);
        await opts.machine.reset(type);
        return new Response(null, { status: 204 });
      }
      if (path === "/redfish/v1/Managers" && req.method === "GET") return json(200, { Members: [{ "@odata.id": mgr }] });
      if (path === mgr && req.method === "GET") return json(200, { "@odata.id": mgr, Id: "BMC", VirtualMedia: { "@odata.id": `${mgr}/VirtualMedia` } });
      if (path === `${mgr}/VirtualMedia` && req.method === "GET") return json(200, { Members: [{ "@odata.id": `${mgr}/VirtualMedia/Floppy` }, { "@odata.id": cd }] });
      if (path === `${mgr}/VirtualMedia/Floppy` && req.method === "GET") return json(200, { "@odata.id": `${mgr}/VirtualMedia/Floppy`, Id: "Floppy", MediaTypes: ["Floppy", "USBStick"], Inserted: false, Image: null });
      if (path === cd && req.method === "GET") {
        return json(200, {
          "@odata.id": cd,
          Id: "Cd",
          MediaTypes: ["CD", "DVD"],
          Image: media.Image,
          Inserted: media.Inserted,
          WriteProtected: true,
          Actions: { "#VirtualMedia.InsertMedia": { target: `${cd}/Actions/VirtualMedia.InsertMedia` }, "#VirtualMedia.EjectMedia": { target: `${cd}/Actions/VirtualMedia.EjectMedia` } },
        });
      }
      if (path === `${cd}/Actions/VirtualMedia.InsertMedia` && req.method === "POST") {
        const image = (body as { Image?: string } | undefined)?.Image;
        if (!image) return error(400, "Image is required");
        if (media.Inserted) return error(409, "media already inserted: eject it first");
        await opts.machine.insert(image);
        media.Image = image;
        media.Inserted = true;
        return new Response(null, { status: 204 });
      }
      if (path === `${cd}/Actions/VirtualMedia.EjectMedia` && req.method === "POST") {
        await opts.machine.eject();
        media.Image = null;
        media.Inserted = false;
        return new Response(null, { status: 204 });
      }
      return error(404, `no resource ${path} for ${req.method}`);
    },
  });
  return { url: `${opts.tls ? "https" : "http"}://${opts.host ?? "127.0.0.1"}:${server.port}`, calls, boot, media, sessions, stop: () => server.stop(true) };
}

/** A machine that only records what was done to it. */
export function recordingMachine(): MockMachine & { log: string[] } {
  const log: string[] = [];
  const m: MockMachine & { log: string[] } = {
    power: "Off",
    log,
    reset(type) {
      log.push(`reset ${type}`);
      if (type === "On" || type === "ForceOn" || type === "PowerCycle" || type === "ForceRestart") m.power = "On";
      if (type === "ForceOff" || type === "GracefulShutdown") m.power = "Off";
    },
    insert(image) {
      log.push(`insert ${image}`);
    },
    eject() {
      log.push("eject");
    },
  };
  return m;
}
