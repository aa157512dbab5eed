/**
 * Each Mac's chosen image, in STATE_DIR/bsdp.json (written whole, then renamed over the old one), so that
 * after a restart an N-key boot still goes straight to what the Mac picked last.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SourceError } from "../errors.ts";
import { ensureStateDir, writeFileAtomic } from "../state/atomic.ts";
import { parseMac, type Mac } from "../wire/mac.ts";
import type { Selections } from "./responder.ts";

export interface SelectionStore extends Selections {
  readonly path: string;
  readonly size: number;
}

interface FileShape {
  version: 1;
  selections: Record<string, { image: number; at: string }>;
}

/** Selections remembered at most (a flood of SELECTs from made-up MACs cannot grow the file past it). */
export const MAX_SELECTIONS = 4096;

export function openSelectionStore(dir: string, max = MAX_SELECTIONS): SelectionStore {
  ensureStateDir(dir);
  const path = join(dir, "bsdp.json");
  const map = new Map<Mac, { image: number; at: string }>();
  if (existsSync(path)) {
    try {
      const data = JSON.parse(readFileSync(path, "utf8")) as Partial<FileShape>;
      for (const [mac, v] of Object.entries(data.selections ?? {})) {
        if (typeof v?.image === "number" && Number.isInteger(v.image)) map.set(parseMac(mac), { image: v.image >>> 0, at: String(v.at ?? "") });
      }
    } catch (err) {
      throw new SourceError("E_STATE_CORRUPT", `${path} is not a BSDP selection file (${(err as Error).message}); move it away to start empty`);
    }
  }
  const save = () => {
    const out: FileShape = { version: 1, selections: Object.fromEntries(map) };
    writeFileAtomic(path, JSON.stringify(out, null, 1));
  };
  return {
    path,
    get size() {
      return map.size;
    },
    get: (mac) => map.get(mac)?.image,
    set(mac, image) {
      if (map.get(mac)?.image === image) return;
      // Most recent last: past the bound, the selection made longest ago is forgotten.
      map.delete(mac);
      map.set(mac, { image, at: new Date().toISOString() });
      while (map.size > max) map.delete(map.keys().next().value!);
      save();
    },
    delete(mac) {
      if (map.delete(mac)) save();
    },
  };
}
