/** A scriptable UDP peer for protocol tests: send bytes, await the next datagram (with a timeout). */
export interface Datagram {
  data: Uint8Array;
  address: string;
  port: number;
}

export interface UdpPeer {
  port: number;
  send(data: Uint8Array, port: number, address?: string): void;
  next(timeoutMs?: number): Promise<Datagram>;
  /** Resolves undefined when nothing arrives in time. */
  maybe(timeoutMs: number): Promise<Datagram | undefined>;
  close(): void;
}

export async function udpPeer(hostname = "127.0.0.1"): Promise<UdpPeer> {
  const queue: Datagram[] = [];
  const waiters: Array<(d: Datagram) => void> = [];
  const sock = await Bun.udpSocket({
    hostname,
    port: 0,
    binaryType: "uint8array",
    socket: {
      data(_s, data, port, address) {
        const d = { data: new Uint8Array(data), address, port };
        const w = waiters.shift();
        if (w) w(d);
        else queue.push(d);
      },
    },
  });
  const maybe = (timeoutMs: number) =>
    new Promise<Datagram | undefined>((resolve) => {
      const q = queue.shift();
      if (q) return resolve(q);
      const t = setTimeout(() => {
        const i = waiters.indexOf(w);
        if (i >= 0) waiters.splice(i, 1);
        resolve(undefined);
      }, timeoutMs);
      const w = (d: Datagram) => {
        clearTimeout(t);
        resolve(d);
      };
      waiters.push(w);
    });
  return {
    port: sock.port,
    send: (data, port, address = hostname) => void sock.send(data, port, address),
    maybe,
    async next(timeoutMs = 3000) {
      const d = await maybe(timeoutMs);
      if (!d) throw new Error(`no datagram within ${timeoutMs} ms`);
      return d;
    },
    close: () => sock.close(),
  };
}
