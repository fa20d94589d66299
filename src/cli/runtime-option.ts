// `--runtime BUILD`, the same on every command that makes a session (restore, serve, bench, model run): a build of
// the closed set (runtime/builds.ts), an unknown one a coded E_ARGUMENT naming the flag.
import { Option } from 'commander';
import { RUNTIME_BUILDS, parseRuntimeBuild } from '../runtime/builds.js';

export function runtimeOption(): Option {
  return new Option(
    '--runtime <build>',
    `ONNX Runtime build: ${RUNTIME_BUILDS.join(', ')} (default: on a GPU provider the installed one that fits the driver, else onnxruntime-node's own; docs/routes.md)`,
  ).argParser((v: string) => parseRuntimeBuild(v));
}
