// `gpen-lab model info|convert|synth|run`: inspect, convert, synthesize and run GPEN graphs on .npy tensors.
import { Command, Option } from 'commander';
import path from 'node:path';
import { GpenLabError, badArgument } from '../errors.js';
import { writeFileAtomicSafe } from '../io/files.js';
import { readNpy, writeNpy } from '../io/npy.js';
import type { ModelInfo } from '../model/registry.js';
import { convertPth, describeModel, synthesizeGpen, synthesizeIdentity, DEFAULT_SEED } from '../model/registry.js';
import { numel, toFloat32 } from '../io/tensor.js';
import { chooseSession } from '../face/choose.js';
import { PRECISIONS, PROVIDER_CHOICES, ROUTES, describeChoice, parseChoice } from '../runtime/routes.js';
import type { RuntimeBuild } from '../runtime/builds.js';
import { SYNTHETIC_WARNING, Steps, info, printJson, warn } from './output.js';
import { sessionOptions } from './runtime-option.js';

export function parseIntArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw badArgument(name, 'an integer', v);
    return n;
  };
}

function describeText(m: ModelInfo): string {
  const lines = [
    `file               ${m.file ?? '(in memory)'}`,
    `format             ${m.format}${m.pth ? ` (${m.pth.format}${m.pth.key ? `, generator under "${m.pth.key}"` : ''}; tensors ${m.pth.dtypes.join('/')})` : ''}`,
    `origin             ${m.origin}`,
    `kind               ${m.kind}`,
    `size               ${m.size}`,
    `channel_multiplier ${m.channelMultiplier ?? 'unknown'}`,
    `narrow             ${m.narrow ?? 'unknown'}`,
    `params             ${m.params.toLocaleString('en-US')}`,
    `precision          ${m.precision}`,
    `sha256             ${m.sha256 ?? '-'}`,
    `synthetic          ${m.synthetic ? `yes (seed ${m.seed}) — ${SYNTHETIC_WARNING}` : 'no'}`,
  ];
  if (m.onnx)
    lines.push(
      `io                 ${m.onnx.inputName} [${m.onnx.inputDims.join(', ')}] -> ${m.onnx.outputName}; batch ${m.onnx.fixedBatch ?? 'dynamic'}; opset ${m.onnx.opset}; producer ${m.onnx.producer || '-'}`,
    );
  return lines.join('\n');
}

function printModel(m: ModelInfo, json: boolean | undefined): void {
  if (json) printJson(m);
  else process.stdout.write(describeText(m) + '\n');
}

export function modelCommand(): Command {
  const model = new Command('model').description('inspect, convert, synthesize and run GPEN models');

  model
    .command('info')
    .description('format, size, channel_multiplier, narrow, params, sha256, synthetic?')
    .argument('<file>', '.pth checkpoint or .onnx graph')
    .option('--key <name>', 'key the generator is nested under in a training checkpoint (default: found automatically)')
    .option('--json', 'machine-readable output')
    .action(async (file: string, o: { key?: string; json?: boolean }) => {
      const m = await describeModel(file, o.key);
      printModel(m, o.json);
    });

  model
    .command('convert')
    .description('convert an official GPEN .pth to ONNX (architecture inferred from the checkpoint)')
    .argument('<in>', 'official GPEN checkpoint (.pth, zip or legacy format)')
    .requiredOption('-o, --output <file>', 'ONNX file to write')
    .option('--fp16', 'store weights and run convolutions in fp16 (style, demodulation and skips stay fp32)')
    .option('--key <name>', 'key the generator is nested under (default: found automatically, e.g. g_ema)')
    .option(
      '--nhwc',
      'the form for CUDA sessions with prefer_nhwc=1 (--cuda-options): the fastest on the GPU, slower elsewhere',
    )
    .option('--json', 'machine-readable output')
    .action(
      async (input: string, o: { output: string; fp16?: boolean; key?: string; nhwc?: boolean; json?: boolean }) => {
        const steps = new Steps(2, o.json);
        steps.step(`reading and building ${path.basename(input)}`);
        const m = await convertPth(input, o.output, {
          precision: o.fp16 ? 'fp16' : 'fp32',
          nhwc: o.nhwc === true,
          ...(o.key ? { key: o.key } : {}),
        });
        steps.step(`wrote ${o.output}`);
        steps.done();
        printModel(m, o.json);
      },
    );

  model
    .command('synth')
    .description('write a seeded synthetic GPEN (or the identity model) of any official size')
    .requiredOption('--size <n>', 'output size: 256, 512, 1024, 2048 (or 16..128 for tests)', parseIntArg('--size'))
    .option('--seed <s>', 'seed of the weights', parseIntArg('--seed'), DEFAULT_SEED)
    .addOption(
      new Option('--kind <kind>', 'gpen or identity (input returned as output)')
        .choices(['gpen', 'identity'])
        .default('gpen'),
    )
    .option('--fp16', 'fp16 variant')
    .option('--nhwc', 'the form for CUDA sessions with prefer_nhwc=1')
    .requiredOption('-o, --output <file>', 'ONNX file to write')
    .option('--json', 'machine-readable output')
    .action(
      async (o: {
        size: number;
        seed: number;
        kind: 'gpen' | 'identity';
        fp16?: boolean;
        nhwc?: boolean;
        output: string;
        json?: boolean;
      }) => {
        const bytes =
          o.kind === 'identity'
            ? synthesizeIdentity(o.size)
            : synthesizeGpen(o.size, o.seed, o.fp16 ? 'fp16' : 'fp32', o.nhwc === true).bytes;
        await writeFileAtomicSafe(o.output, bytes);
        const m = await describeModel(o.output);
        if (o.kind === 'gpen') warn(SYNTHETIC_WARNING);
        printModel(m, o.json);
      },
    );

  const run = model
    .command('run')
    .description('run a model on a float32 NCHW .npy tensor in [-1, 1] and write the output as .npy')
    .argument('<model>', '.onnx or .pth')
    .requiredOption('--input <file>', 'input tensor, [N,3,S,S] or [3,S,S], float32 (or float16) .npy')
    .requiredOption('--output <file>', 'output .npy (float32)');
  sessionOptions(run, {
    route: "fast: the measured-best binding and options; stock: onnxruntime-node's binding",
    precision: 'for a .pth (default: fp16 on a GPU, fp32 on the CPU; an .onnx runs in its own)',
  });
  run
    .option('--key <name>', 'for a .pth: key the generator is nested under')
    .option('--json', 'machine-readable output')
    .action(
      async (
        file: string,
        o: {
          input: string;
          output: string;
          provider: string;
          route: string;
          runtime?: RuntimeBuild;
          precision?: string;
          key?: string;
          json?: boolean;
        },
      ) => {
        const x = await readNpy(o.input);
        const spec = { type: 'file' as const, file, ...(o.key ? { key: o.key } : {}) };
        const { first, settled } = await chooseSession({
          model: spec,
          provider: parseChoice(PROVIDER_CHOICES, o.provider, '--provider'),
          route: parseChoice(ROUTES, o.route, '--route'),
          ...(o.runtime !== undefined ? { runtime: o.runtime } : {}),
          ...(o.precision !== undefined ? { precision: parseChoice(PRECISIONS, o.precision, '--precision') } : {}),
        });
        const S = first.prepared.info.size;
        const dims = x.dims.length === 3 ? [1, ...x.dims] : x.dims;
        if (dims.length !== 4 || dims[1] !== 3 || dims[2] !== S || dims[3] !== S) {
          void first.runner.then(
            (r) => r.release(),
            () => undefined,
          );
          throw new GpenLabError(
            'E_NPY_INVALID',
            `${o.input} has shape [${x.dims.join(', ')}] but ${first.prepared.label} takes [N, 3, ${S}, ${S}] (or [3, ${S}, ${S}])`,
            `Resize the face to ${S}x${S} and save it as an NCHW float32 array in [-1, 1].`,
            { input: o.input },
          );
        }
        const plan = await settled;
        const { prepared, choice } = plan;
        const session = await plan.runner;
        info(describeChoice(choice));
        if (prepared.info.synthetic) warn(SYNTHETIC_WARNING);
        const fixed = prepared.info.onnx?.fixedBatch ?? null;
        const data = toFloat32(x);
        const per = 3 * S * S;
        const out = new Float32Array(numel(dims));
        const times: number[] = [];
        const chunk = fixed ?? dims[0];
        for (let b = 0; b < dims[0]; b += chunk) {
          const n = Math.min(chunk, dims[0] - b);
          const r = await session.run(data.subarray(b * per, (b + n) * per), [n, 3, S, S]);
          out.set(r.data, b * per);
          times.push(r.ms);
        }
        await writeNpy(o.output, { dtype: 'float32', dims, data: out });
        await session.placementSettled?.();
        const placement = session.placement;
        await session.release();
        const result = {
          model: prepared.info,
          provider: {
            asked: choice.asked.provider,
            chosen: choice.provider,
            ran: placement?.ran ?? null,
            nodesByProvider: placement?.nodesByProvider ?? null,
            mismatch: placement?.mismatch ?? null,
          },
          route: choice,
          input: { file: o.input, dims },
          output: { file: o.output, dims },
          sessionCreateMs: session.createMs,
          runMs: times,
          synthetic: prepared.info.synthetic,
        };
        if (placement?.mismatch)
          warn(
            `asked for ${choice.provider} but nodes ran on ${placement.ran.join(', ')} (${JSON.stringify(placement.nodesByProvider)})`,
          );
        if (o.json) printJson(result);
        else
          info(
            `ran ${prepared.label} on ${choice.provider} (nodes: ${JSON.stringify(placement?.nodesByProvider ?? {})}): session ${session.createMs.toFixed(0)} ms, run ${times.map((t) => t.toFixed(0)).join('+')} ms -> ${o.output}`,
          );
      },
    );
  return model;
}
