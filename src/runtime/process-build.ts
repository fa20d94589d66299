// Which runtime build (builds.ts) this process runs. Both libraries are named libonnxruntime.so.1 (their SONAME), so
// a process holds one: onnxruntime-node's binding with ort1.29's, or another build's through the C API. A thread
// claims its build before loading anything (the CLI's choice, a lab cell's), and /proc/self/maps says what any
// thread of the process has loaded (the service's engine thread, whose module state is its own).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { GpenLabError } from '../errors.js';
import { DEFAULT_BUILD, RUNTIME_BUILDS, buildSpec, type RuntimeBuild } from './builds.js';

let claimed: RuntimeBuild | null = null;

/** Declares this thread's build; a second, other build is a coded error (a process runs one build). */
export function claimBuild(b: RuntimeBuild): void {
  if (claimed !== null && claimed !== b) {
    throw new GpenLabError(
      'E_RUNTIME_VERSION',
      `The runtime ${b} was asked for in a process that runs ${claimed}: a process runs one build`,
      `Run ${b} in a process of its own (a new gpen-lab command, or a child process).`,
      { input: 'runtime', option: 'runtime', received: b },
    );
  }
  claimed = b;
}

/** The build this thread claimed, or null. */
export function claimedBuild(): RuntimeBuild | null {
  return claimed;
}

/** The files mapped into this process (every thread's), once each; empty where /proc is absent. */
function mappedFiles(): string[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return [];
  }
  const files = new Set<string>();
  for (const line of text.split('\n')) {
    const at = line.indexOf('/');
    if (at >= 0) files.add(line.slice(at));
  }
  return [...files];
}

/** Whether onnxruntime-node's binding is loaded by any thread of this process. */
export function bindingMapped(): boolean {
  return mappedFiles().some((f) => path.basename(f) === 'onnxruntime_binding.node');
}

/** A build other than onnxruntime-node's that this process runs: claimed by this thread, or its library mapped. */
export function foreignBuild(): RuntimeBuild | null {
  if (claimed !== null) return claimed === DEFAULT_BUILD ? null : claimed;
  const names = new Set(mappedFiles().map((f) => path.basename(f)));
  return (
    RUNTIME_BUILDS.find((b) => {
      const lib = buildSpec(b).library;
      return lib.from === 'npm-pack' && names.has(lib.file);
    }) ?? null
  );
}
