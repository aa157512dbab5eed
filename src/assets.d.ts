// Bun resolves `import x from "./file.iso" with { type: "file" }` to a path (embedded by --compile).
declare module "*.iso" {
  const path: string;
  export default path;
}

// iPXE binaries embedded by scripts/build.ts (a build-time module; absent when running from source).
declare module "netboot-embedded:ipxe" {
  const paths: Record<string, string>;
  export default paths;
}

