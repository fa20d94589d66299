// `--runtime BUILD`, the same on every command that makes a session (restore, serve, bench, model run): a build of
// the closed set (runtime/builds.ts), an unknown one a coded E_ARGUMENT naming the flag. `sessionOptions` adds it with
// `--provider`, `--route` and `--precision`, the session flags of restore, serve, demo and model run.
import type { Command } from 'commander';
import { Option } from 'commander';
import type { RuntimeBuild } from '../runtime/builds.js';
import { RUNTIME_BUILDS, parseRuntimeBuild } from '../runtime/builds.js';
import { PRECISIONS, PROVIDER_CHOICES, ROUTES } from '../runtime/routes.js';

export function runtimeOption(): Option {
  return new Option(
    '--runtime <build>',
    `ONNX Runtime build: ${RUNTIME_BUILDS.join(', ')} (default: on a GPU provider the installed one that fits the driver, else onnxruntime-node's own; docs/routes.md)`,
  ).argParser((v: string) => parseRuntimeBuild(v));
}

/** The help texts that differ between commands; `runtime: false` leaves `--runtime` off (demo). */
interface SessionHelp {
  route: string;
  precision: string;
  runtime?: boolean;
}

/** What commander parses from sessionOptions' flags. */
export interface SessionFlags {
  provider: string;
  route: string;
  runtime?: RuntimeBuild;
  precision?: string;
}

/** Adds `--provider` (default auto), `--route` (default fast), `--runtime` and `--precision` to `cmd`, in that order. */
export function sessionOptions(cmd: Command, help: SessionHelp): Command {
  cmd
    .addOption(
      new Option('--provider <p>', 'execution provider (auto: CUDA, else a hardware WebGPU adapter, else the CPU)')
        .choices([...PROVIDER_CHOICES])
        .default('auto'),
    )
    .addOption(new Option('--route <r>', help.route).choices([...ROUTES]).default('fast'));
  if (help.runtime !== false) cmd.addOption(runtimeOption());
  return cmd.addOption(new Option('--precision <p>', help.precision).choices([...PRECISIONS]));
}
