// `gpen-lab serve`: the restoration service (src/serve/server.ts) with a graceful shutdown on SIGTERM and SIGINT.
import { Command } from 'commander';
import { GpenLabError } from '../errors.js';
import { PRECISIONS, PROVIDER_CHOICES, ROUTES, parseChoice } from '../runtime/routes.js';
import { parseCudaOptions } from '../runtime/capi-model.js';
import { parseIntArg } from './model.js';
import type { SessionFlags } from './runtime-option.js';
import { sessionOptions } from './runtime-option.js';
import type { ModelSourceFlags } from './model-options.js';
import { modelSourceOptions, modelSpec } from './model-options.js';
import { SYNTHETIC_WARNING, warn } from './output.js';

export function serveCommand(): Command {
  const cmd = new Command('serve')
    .description('face restoration over HTTP: POST /v1/restore, /healthz, /readyz, /v1/doctor, /metrics')
    .option('--port <n>', 'port (0: any free one)', parseIntArg('--port'), 8080)
    .option('--host <h>', 'address to listen on', '127.0.0.1');
  modelSourceOptions(cmd, 'seeded synthetic GPEN of this size (for measuring only: every response says so)');
  sessionOptions(cmd, {
    route: "fast: the measured-best binding and options for the provider; stock: onnxruntime-node's binding",
    precision: 'for a .pth or --synthetic (default: fp16 on a GPU, fp32 on the CPU)',
  });
  return cmd
    .option(
      '--max-batch <n>',
      'faces per inference, across requests (default: 32 on the CUDA fast route, 8 through the stock binding and on WebGPU, 4 on the CPU)',
      parseIntArg('--max-batch'),
    )
    .option('--max-wait-ms <m>', 'how long a face waits for others to fill a batch', parseIntArg('--max-wait-ms'), 10)
    .option('--max-queue <q>', 'requests in progress at once; more get 429', parseIntArg('--max-queue'), 64)
    .option(
      '--max-inflight-mp <n>',
      "megapixels of images in progress at once; more get 429 (default: the machine's memory / 80 bytes)",
      parseIntArg('--max-inflight-mp'),
    )
    .option('--body-limit-mb <n>', 'largest upload (413 above)', parseIntArg('--body-limit-mb'), 32)
    .option('--timeout-ms <n>', 'per-request limit (504 above)', parseIntArg('--timeout-ms'), 60_000)
    .option('--max-pixels <n>', 'refuse images larger than this (422)', parseIntArg('--max-pixels'))
    .option('--log-level <l>', 'JSON log level: fatal, error, warn, info, debug, silent', 'info')
    .option(
      '--cuda-options <k=v,...>',
      "for experts: CUDA provider options replacing the fast route's set (docs/routes.md)",
      (v: string) => parseCudaOptions(v),
    )
    .option(
      '--devices <list>',
      'all, or GPU indices (0,2): one engine thread a GPU, each its own session; a request goes to the GPU with the fewest',
    )
    .action(
      async (
        o: ModelSourceFlags &
          SessionFlags & {
            devices?: string;
            port: number;
            host: string;
            maxBatch?: number;
            maxWaitMs: number;
            maxQueue: number;
            maxInflightMp?: number;
            bodyLimitMb: number;
            timeoutMs: number;
            maxPixels?: number;
            logLevel: string;
            cudaOptions?: Record<string, string>;
          },
      ) => {
        if ((o.model === undefined) === (o.synthetic === undefined)) {
          throw new GpenLabError(
            'E_ARGUMENT',
            o.model === undefined
              ? 'serve needs GPEN weights and none were given'
              : 'serve takes --model or --synthetic, not both',
            'Pass --model FILE (the official GPEN-BFR-512.pth or a GPEN .onnx), or --synthetic 512 to measure the service with seeded random weights (every response says they are synthetic).',
            { input: '--model' },
          );
        }
        const model = modelSpec(o);
        let devices: number[] | undefined;
        if (o.devices !== undefined) {
          const { devicesHere } = await import('../doctor/devices.js');
          devices = await devicesHere(o.devices);
        }
        if (model.type === 'synthetic') warn(SYNTHETIC_WARNING);
        // loaded here, not at start: fastify and prom-client cost every other command's start (a cold restore's too)
        const { startService } = await import('../serve/server.js');
        const svc = await startService({
          host: o.host,
          port: o.port,
          model,
          ...(devices ? { devices } : {}),
          provider: parseChoice(PROVIDER_CHOICES, o.provider, '--provider'),
          route: parseChoice(ROUTES, o.route, '--route'),
          ...(o.runtime !== undefined ? { runtime: o.runtime } : {}),
          ...(o.precision !== undefined ? { precision: parseChoice(PRECISIONS, o.precision, '--precision') } : {}),
          ...(o.maxBatch !== undefined ? { maxBatch: o.maxBatch } : {}),
          maxWaitMs: o.maxWaitMs,
          maxQueue: o.maxQueue,
          ...(o.maxInflightMp !== undefined ? { maxInflightPixels: o.maxInflightMp * 1e6 } : {}),
          bodyLimit: o.bodyLimitMb * 2 ** 20,
          timeoutMs: o.timeoutMs,
          ...(o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : {}),
          logLevel: o.logLevel === 'silent' ? false : o.logLevel,
          ...(o.cudaOptions ? { cudaOptions: o.cudaOptions } : {}),
        });
        let closing = false;
        const stop = (signal: string) => {
          if (closing) return;
          closing = true;
          svc.app.log.info({ event: 'shutdown', signal }, 'stopping: no new requests, finishing those in progress');
          void svc.close().then(() => {
            svc.app.log.info({ event: 'stopped' }, 'stopped');
            process.exit(0);
          });
        };
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGINT', () => stop('SIGINT'));
        await svc.ready.catch(() => undefined);
        // the service stays up (readyz says "failed" when the model did not load)
        await new Promise<void>(() => undefined);
      },
    );
}
