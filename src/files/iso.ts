/** FileTree over an ISO 9660 image, read in place from any ByteSource. */
import { IsoImage, type IsoEntry } from "../iso/image.ts";
import { planReplacement, replaceFiles, type ReplacementPlan } from "../iso/patch.ts";
import { patchedData } from "./patched.ts";
import { shiftAlign, type ByteSource } from "./source.ts";
import { fnv1a, type FileData, type FileInfo, type FileTree } from "./tree.ts";

export async function openIsoTree(source: ByteSource): Promise<FileTree & { image: IsoImage }> {
  const image = await IsoImage.open(source);
  const byPath = new Map<string, IsoEntry>();
  const plans = new Map<string, Promise<ReplacementPlan>>();
  const info = (e: IsoEntry): FileInfo => {
    byPath.set(e.path, e);
    return { name: e.name, path: e.path, type: e.type === "dir" ? "dir" : "file", size: e.size, mtime: e.mtime ?? source.mtime };
  };
  return {
    kind: "iso",
    get local() {
      return source.localPath !== undefined;
    },
    disc: {
      bootable: image.elTorito,
      async withFiles(files) {
        const planned = await Promise.all(
          files.map(async ({ path, content }) => {
            let plan = plans.get(path);
            if (!plan) plans.set(path, (plan = planReplacement(source, path)));
            plan.catch(() => plans.delete(path));
            return { plan: await plan, content };
          }),
        );
        const r = replaceFiles(planned);
        const tag = files.map(({ content }) => `${fnv1a(content)}-${content.length.toString(16)}`).join("-");
        return patchedData(source, { size: r.size, patches: r.patches, mtime: source.mtime, etag: `"${source.version}-v${tag}"` });
      },
    },
    description: `${source.description} (ISO 9660, ${image.nameSpace} names, volume ${JSON.stringify(image.volumeId)})`,
    image,
    async stat(path) {
      const e = await image.lookup(path);
      // Symlinks that lead nowhere inside the image are not files.
      return e && e.type !== "symlink" ? info(e) : undefined;
    },
    async list(path) {
      return (await image.list(path)).filter((e) => e.type !== "symlink").map(info);
    },
    async open(fi): Promise<FileData> {
      const e = byPath.get(fi.path) ?? (await image.lookup(fi.path));
      if (!e || e.type !== "file") throw new Error(`not a file: ${fi.path}`);
      for (const ext of e.extents) image.checkExtent(e, ext);
      const single = e.extents.length === 1 ? e.extents[0]! : undefined;
      const start = single?.offset ?? 0;
      return {
        size: e.size,
        mtime: e.mtime ?? source.mtime,
        // The bytes of a file are a window on an unchanged image: image version + window identify them.
        etag: `"${source.version}-${start.toString(16)}-${e.size.toString(16)}"`,
        read: (offset, length) => image.read(e, offset, length),
        local: source.localPath && (single || e.size === 0) ? { path: source.localPath, offset: (source.localOffset ?? 0) + start } : undefined,
        align: single ? shiftAlign(source.align, start) : undefined,
      };
    },
    close: () => source.close(),
  };
}
