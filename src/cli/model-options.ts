// The model flags of restore and serve: `--model FILE`, or `--synthetic SIZE` with its `--seed`, and `--key` for a .pth.
import type { Command } from 'commander';
import type { ModelSpec } from '../model/registry.js';
import { parseIntArg } from './model.js';

/** What commander parses from modelSourceOptions' flags. */
export interface ModelSourceFlags {
  model?: string;
  synthetic?: number;
  seed: number;
  key?: string;
}

/** Adds `--model`, `--synthetic` (helped by `syntheticHelp`, which says what synthetic weights do to the output), `--seed` and `--key`. */
export function modelSourceOptions(cmd: Command, syntheticHelp: string): Command {
  return cmd
    .option('--model <file>', 'GPEN weights: the official .pth or an .onnx')
    .option('--synthetic <size>', syntheticHelp, parseIntArg('--synthetic'))
    .option('--seed <s>', 'seed of --synthetic weights', parseIntArg('--seed'), 0)
    .option('--key <name>', 'for a .pth: key the generator is nested under');
}

/** The model the flags name: `--model` (with `--key`) if given, else `--synthetic` (the caller checked one is). */
export function modelSpec(o: ModelSourceFlags): ModelSpec {
  return o.model !== undefined
    ? { type: 'file', file: o.model, ...(o.key ? { key: o.key } : {}) }
    : { type: 'synthetic', size: o.synthetic!, seed: o.seed };
}
