/** Opens the host store a server (or `netboot hosts`) was given: --store postgres://…, else the files in --state-dir. */
import type { Logger } from "../../log.ts";
import type { HostBook } from "../book.ts";
import { FileBackend } from "./file.ts";
import { PgBackend } from "./postgres.ts";
import { MirroredStore, type HostStore } from "./store.ts";

export interface StoreSpec {
  /** postgres://…, or undefined for the file store. */
  url: string | undefined;
  stateDir: string;
}

/**
 * `role` "server": the file backend compacts and follows its journal, and every listed host gets its
 * token; "client" (`netboot hosts`): reads, and appends beside a running server.
 */
export async function openHostStore(spec: StoreSpec, book: HostBook, log: Logger, role: "server" | "client" = "server"): Promise<HostStore> {
  const listed = (mac: Parameters<HostBook["lookup"]>[0]) => book.lookup(mac) !== undefined;
  const backend = spec.url ? await PgBackend.open(spec.url, log, listed, role) : new FileBackend(spec.stateDir, { log, role });
  try {
    return await MirroredStore.open(book, backend, log, { tokens: role === "server", retry: role === "server" });
  } catch (err) {
    await backend.close().catch(() => {});
    throw err;
  }
}
