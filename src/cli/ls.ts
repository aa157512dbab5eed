import { defineCommand } from "citty";
import { openTree } from "../files/open.ts";
import type { FileInfo, FileTree } from "../files/tree.ts";
import { sourceArg } from "./args.ts";
import { guard, stderrLogger } from "./common.ts";

export default defineCommand({
  meta: { name: "ls", description: "List a directory of the image (case-insensitive paths, like the servers)" },
  args: {
    ...sourceArg,
    dir: { type: "positional", required: false, description: "Directory inside the image", default: "/" },
    recursive: { type: "boolean", alias: "R", description: "List subdirectories too" },
  },
  async run({ args }) {
    await guard(async () => {
      const tree = await openTree(args.source, { cacheDir: args["cache-dir"], log: stderrLogger() });
      try {
        const dir = await tree.stat(args.dir ?? "/");
        if (!dir) throw new (await import("../errors.ts")).SourceError("E_NOT_FOUND", `${args.dir}: not in the image`);
        if (dir.type !== "dir") print([dir], false);
        else await list(tree, dir.path, args.recursive ?? false);
      } finally {
        await tree.close();
      }
    });
  },
});

async function list(tree: FileTree, path: string, recursive: boolean): Promise<void> {
  const entries = await tree.list(path);
  print(entries, recursive);
  if (recursive) for (const e of entries) if (e.type === "dir") await list(tree, e.path, true);
}

function print(entries: FileInfo[], fullPath: boolean): void {
  for (const e of entries) {
    const size = e.type === "dir" ? "-" : String(e.size);
    const name = (fullPath ? e.path : e.name) + (e.type === "dir" ? "/" : "");
    process.stdout.write(`${e.type === "dir" ? "d" : "-"} ${size.padStart(12)}  ${name}\n`);
  }
}
