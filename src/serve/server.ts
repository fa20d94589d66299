// `gpen-lab serve`: the restoration pipeline behind HTTP (fastify). This thread keeps only HTTP: the routes (routes.ts:
// body limits, format and size checks, admission by decoded pixels and by count, per-request timeouts, coded errors
// with the right status), Prometheus metrics, JSON logs, the port (listen.ts), and a graceful shutdown that finishes
// what was accepted. The pipeline (decode to encode, faces of concurrent requests batched together) runs on the
// engine thread (engine.ts), so that its synchronous work never holds this event loop.
import os from 'node:os';
import multipart from '@fastify/multipart';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type client from 'prom-client';
import { badArgument, errorMessage } from '../errors.js';
import { DEFAULT_MAX_PIXELS } from '../io/image.js';
import type { Precision } from '../model/gpen-graph.js';
import type { ModelSpec } from '../model/registry.js';
import { DEFAULT_BUILD, type RuntimeBuild } from '../runtime/builds.js';
import { claimBuild } from '../runtime/process-build.js';
import type { ProviderChoice, Route } from '../runtime/routes.js';
import { describeChoice } from '../runtime/routes.js';
import { chooseRuntime } from '../runtime/runtime-choice.js';
import { defaultPixelBudget } from './budget.js';
import { Engine } from './engine.js';
import { EnginePool, deviceLabel } from './engine-pool.js';
import { listen } from './listen.js';
import { addRoutes } from './routes.js';
import { serviceMetrics } from './service-metrics.js';

export interface ServeOptions {
  host?: string;
  port?: number;
  model: ModelSpec;
  /** One engine thread a GPU, each its own session on that deviceId (serve --devices); default one, on the default device. */
  devices?: number[];
  /** Default auto (face/choose.ts). */
  provider?: ProviderChoice;
  /** Default fast: on CUDA the C API route with the warm set (runtime/routes.ts), its slower start paid once. */
  route?: Route;
  /** The runtime build (runtime/builds.ts; default: as restore chooses it, runtime/runtime-choice.ts). */
  runtime?: RuntimeBuild;
  precision?: Precision;
  /** Faces per inference across requests (default per provider: routes.ts defaultBatch). */
  maxBatch?: number;
  maxWaitMs?: number;
  /** Requests admitted at once (waiting or being processed); more get 429. */
  maxQueue?: number;
  /** Largest request body in bytes (413 above). */
  bodyLimit?: number;
  /** Per-request limit (504 above). */
  timeoutMs?: number;
  maxPixels?: number;
  /**
   * Decoded pixels the requests in progress may hold together (each image counts width x height from its header,
   * from admission until the engine thread is done with it; default budget.ts defaultPixelBudget: a quarter of the
   * machine's memory at the bytes a pixel the flood measured, and at least one image of maxPixels). An image beyond
   * what is left waits for none: 429 with Retry-After.
   */
  maxInflightPixels?: number;
  /** Images in the pipeline at once (default: the cores, at least 2); the rest of the admitted wait for a slot. */
  pipelineSlots?: number;
  /** pino level, or false for no log. */
  logLevel?: string | false;
  /** CUDA provider options (ONNX Runtime's names): the GPEN session goes through the C API route. */
  cudaOptions?: Record<string, string>;
  /** For tests (protocol.ts EngineConfig.hold): the engine thread blocks after acknowledging each job while hold[0] is 0. */
  hold?: Int32Array;
  /** For tests (protocol.ts EngineConfig.holdLoad): the model's load waits while holdLoad[0] is 0. */
  holdLoad?: Int32Array;
}

export interface Service {
  app: FastifyInstance;
  /** Resolves once the model is loaded and warmed up (rejects if loading failed). */
  ready: Promise<void>;
  metrics: client.Registry;
  url: string;
  /** The first GPU's engine thread (the only one without --devices): its state, and events per job. */
  engine: Engine;
  /** Every GPU's engine, and where requests go. */
  pool: EnginePool;
  close(): Promise<void>;
}

export async function startService(o: ServeOptions): Promise<Service> {
  const maxWaitMs = o.maxWaitMs ?? 10;
  const maxQueue = o.maxQueue ?? 64;
  const timeoutMs = o.timeoutMs ?? 60_000;
  const bodyLimit = o.bodyLimit ?? 32 * 2 ** 20;
  if (o.maxInflightPixels !== undefined && !(Number.isFinite(o.maxInflightPixels) && o.maxInflightPixels >= 1))
    throw badArgument('maxInflightPixels', 'a positive number of pixels', o.maxInflightPixels);
  const pixelBudget = o.maxInflightPixels ?? defaultPixelBudget(o.maxPixels ?? DEFAULT_MAX_PIXELS);
  // the engine thread runs the build; this thread claims it, so that nothing here (the doctor's route) loads
  // onnxruntime-node's binding beside another build's library. A build that cannot run fails before the port is taken
  const build = chooseRuntime({ runtime: o.runtime, provider: o.provider ?? 'auto', route: o.route ?? 'fast' }).build;
  if (build !== DEFAULT_BUILD) claimBuild(build);
  const synthetic = o.model.type === 'synthetic';
  const { registry, m } = serviceMetrics();

  const app = Fastify({
    logger: o.logLevel === false ? false : { level: o.logLevel ?? 'info' },
    bodyLimit,
    return503OnClosing: true,
  });
  // every body but multipart is the image itself, as bytes, whatever its Content-Type says (no JSON or text parsing)
  app.removeAllContentTypeParsers();
  await app.register(multipart, { limits: { fileSize: bodyLimit, files: 1, fields: 10 } });
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  // started once the port is taken; null only before that
  let engine: EnginePool | null = null;
  addRoutes(
    app,
    registry,
    m,
    { maxQueue, timeoutMs, bodyLimit, maxPixels: o.maxPixels ?? DEFAULT_MAX_PIXELS, pixelBudget, synthetic },
    () => engine,
  );

  const url = await listen(app, o.host, o.port ?? 8080);

  // the model is loaded, warmed up and run on the engine thread; /healthz answers throughout
  const devices: (number | null)[] = o.devices ?? [null];
  const engines = devices.map(
    (device) =>
      new Engine(
        {
          ...(device !== null ? { deviceId: device } : {}),
          model: o.model,
          provider: o.provider ?? 'auto',
          route: o.route ?? 'fast',
          ...(o.runtime ? { runtime: o.runtime } : {}),
          ...(o.precision ? { precision: o.precision } : {}),
          ...(o.maxBatch !== undefined ? { maxBatch: o.maxBatch } : {}),
          maxWaitMs,
          ...(o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : {}),
          pipelineSlots: o.pipelineSlots ?? Math.max(2, os.availableParallelism()),
          ...(o.cudaOptions ? { cudaOptions: o.cudaOptions } : {}),
          ...(o.hold ? { hold: o.hold } : {}),
          ...(o.holdLoad ? { holdLoad: o.holdLoad } : {}),
        },
        (e) => {
          // with other GPUs' engines still ready, the service goes on on those
          const serving = pool.state === 'ready';
          if (!serving) m.ready.set(0);
          app.log.error(
            { event: 'engine-crashed', error: e.message, device: deviceLabel(device) },
            serving
              ? `the engine thread of GPU ${deviceLabel(device)} stopped: the other GPUs serve on`
              : 'the engine thread stopped: restore answers 503 until the service is restarted',
          );
        },
      ),
  );
  const eng = engines[0];
  const pool = new EnginePool(engines, devices);
  engine = pool;
  pool.on('batch', (faces, requests, ms, device) => {
    m.batch.observe(faces);
    m.batchRequests.observe(requests);
    m.batchSeconds.observe(ms / 1000);
    m.deviceBatchSeconds.observe({ device: deviceLabel(device) }, ms / 1000);
  });
  const ready = pool.ready.then(
    (r) => {
      m.ready.set(1);
      app.log.info(
        {
          event: 'ready',
          model: r.label,
          provider: r.choice.provider,
          route: r.choice,
          maxBatch: r.maxBatch,
          maxWaitMs,
          maxQueue,
          pixelBudget,
          synthetic,
        },
        `model loaded and warmed up: ${describeChoice(r.choice)}`,
      );
    },
    (e: unknown) => {
      app.log.error({ event: 'load-failed', error: errorMessage(e) }, 'the model failed to load');
      throw e;
    },
  );
  ready.catch(() => undefined);

  return {
    app,
    ready,
    metrics: registry,
    url,
    engine: eng,
    pool,
    async close() {
      // stops accepting and waits for the requests in progress; keep-alive connections that fall idle after their
      // last response are closed as they do (the server would otherwise wait out their keep-alive timeout)
      const idle = setInterval(() => app.server.closeIdleConnections(), 50);
      try {
        await app.close();
      } finally {
        clearInterval(idle);
        // then the engine thread finishes what it still has (jobs whose requests timed out) and ends
        await pool.close();
      }
    },
  };
}
