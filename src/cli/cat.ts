import { defineCommand } from "citty";
import { SourceError } from "../errors.ts";
import { openTree } from "../files/open.ts";
import { sourceArg } from "./args.ts";
import { guard, stderrLogger } from "./common.ts";

export default defineCommand({
  meta: { name: "cat", description: "Write one file of the image to stdout, as stored (e.g. boot.cfg)" },
  args: {
    ...sourceArg,
    path: { type: "positional", required: true, description: "File inside the image (any case, with or without ;1)" },
  },
  async run({ args }) {
    await guard(async () => {
      const tree = await openTree(args.source, { cacheDir: args["cache-dir"], log: stderrLogger() });
      try {
        const info = await tree.stat(args.path);
        if (!info) throw new SourceError("E_NOT_FOUND", `${args.path}: not in the image`);
        if (info.type !== "file") throw new SourceError("E_IS_DIR", `${args.path}: is a directory (try: netboot ls)`);
        const data = await tree.open(info);
        for (let pos = 0; pos < data.size; ) {
          const n = Math.min(1 << 20, data.size - pos);
          const chunk = await data.read(pos, n);
          pos += n;
          if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once("drain", r));
        }
      } finally {
        await tree.close();
      }
    });
  },
});
