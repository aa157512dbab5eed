/** Opens whatever the user named as the image source and returns its file tree. */
import { stat } from "node:fs/promises";
import { SourceError } from "../errors.ts";
import { openIsoTree } from "./iso.ts";
import { openFileSource, sourceErrorFromFs } from "./source.ts";
import type { FileTree } from "./tree.ts";

export async function openTree(spec: string): Promise<FileTree> {
  if (/^https?:\/\//i.test(spec)) {
    throw new SourceError("E_SOURCE_KIND", `${spec}: URL sources are not supported by this build yet; download the ISO and pass the file`);
  }
  let isDir = false;
  try {
    isDir = (await stat(spec)).isDirectory();
  } catch (err) {
    throw sourceErrorFromFs(err, spec);
  }
  if (isDir) throw new SourceError("E_SOURCE_KIND", `${spec} is a directory; this build serves ISO files only`);
  const source = await openFileSource(spec);
  try {
    return await openIsoTree(source);
  } catch (err) {
    await source.close();
    if (err instanceof Error && "code" in err) throw new SourceError((err as { code: string }).code, `${spec}: ${err.message}`, { cause: err });
    throw err;
  }
}
