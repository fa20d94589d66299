// A CommonJS package loaded on first use rather than at import: a cold start reaches its command sooner when modules
// it does not need (onnx-proto, yauzl, onnxruntime-node on the C API route) are not loaded (test/imports.test.ts).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A getter for the package `id`, required (once) by its first call. */
export function onFirstUse<T>(id: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(id) as T);
}
