// koffi with stacks large enough for what we call through it. koffi runs foreign calls on its own stacks: 2 MiB for
// synchronous calls and only 128 KiB for asynchronous ones by default, and ONNX Runtime's CreateSession or CUDA's
// context creation overflow 128 KiB (a segfault in the first async CreateSession and cudaFree(0)).
// Every module that calls native code through koffi imports it from here, so the configuration comes first.
import koffi from 'koffi';

const MiB = 1024 * 1024;
export const KOFFI_STACK_BYTES = 8 * MiB;
koffi.config({
  ...koffi.config(),
  sync_stack_size: KOFFI_STACK_BYTES,
  async_stack_size: KOFFI_STACK_BYTES,
  resident_async_pools: 4,
});

export default koffi;

/**
 * The functions of a native library by their C signatures (koffi's declaration syntax), loaded together: `T` gives
 * each its JavaScript type. Used for the CUDA runtime and driver, which ONNX Runtime's provider has already loaded.
 */
export function loadFunctions<T>(library: string, signatures: Record<keyof T, string>): T {
  const lib = koffi.load(library);
  return Object.fromEntries(Object.entries(signatures).map(([name, sig]) => [name, lib.func(sig as string)])) as T;
}
