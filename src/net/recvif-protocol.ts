/** Messages between net/iface-udp.ts and its receiving worker (net/recvif-worker.ts). */

export interface RecvIfInit {
  type: "init";
  platform: string;
  address: string;
  port: number;
  /** Only datagrams that came in on this interface are passed on. */
  ifindex: number;
}

export type ToRecvIfWorker = RecvIfInit | { type: "stop" };

export type FromRecvIfWorker =
  | { type: "ready"; fd: number; port: number }
  | { type: "error"; message: string; errno: number }
  | { type: "datagram"; data: Uint8Array; address: string; port: number }
  /** Datagrams dropped since the last report, because they came in on another interface (or said none). */
  | { type: "dropped"; count: number; lastIfindex: number | undefined }
  | { type: "stopped" };
