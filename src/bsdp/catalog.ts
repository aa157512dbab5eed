/** The images a Mac sees in its picker: stable ids from image names, names from boot.cfg. Pure. */
import { MAX_LOCAL_INDEX } from "./constants.ts";
import { installImageId, type BootImage } from "./options.ts";

export interface CatalogEntry {
  /** The image's name in URLs ("esxi8"): what the id is derived from. */
  name: string;
  /** What the picker shows ("ESXi 8.0.2 (22380479)"). */
  label: string;
}

/**
 * One install image per entry. The index (1..4095, "local to this server") is a hash of the image name,
 * so a Mac's remembered selection still means the same image after a restart or after images are added;
 * on a collision the next free index is taken.
 */
export function bsdpCatalog(entries: readonly CatalogEntry[]): BootImage[] {
  const used = new Set<number>();
  return entries.map((e) => {
    let index = (fnv1a(e.name) % MAX_LOCAL_INDEX) + 1;
    while (used.has(index)) index = (index % MAX_LOCAL_INDEX) + 1;
    used.add(index);
    return { id: installImageId(index), name: e.label };
  });
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(s)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}
