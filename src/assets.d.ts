// Bun resolves `import x from "./file.iso" with { type: "file" }` to a path (embedded by --compile).
declare module "*.iso" {
  const path: string;
  export default path;
}
