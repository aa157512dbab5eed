/**
 * The real undici package. Under Bun a bare `import "undici"` resolves to Bun's built-in partial shim
 * (no Agent.close, no connection events); importing the file path gets the package from node_modules
 * on both runtimes.
 */
export { Agent, request, errors, interceptors } from "undici/index.js";
export type { Dispatcher } from "undici/index.js";
