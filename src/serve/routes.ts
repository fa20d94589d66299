// The service's routes, on the HTTP thread: /healthz and /readyz from this thread's own state, /v1/doctor, /metrics,
// and POST /v1/restore with its admission (by count and by decoded pixels: 429), its timeout (504) and its coded
// errors with the right status; the framework's own errors and unknown routes in the same shape.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type client from 'prom-client';
import { runDoctor } from '../doctor/index.js';
import { GpenLabError, isGpenLabError, toGpenLabError } from '../errors.js';
import { imageSize, sniffImageFormat } from '../io/image.js';
import { describeChoice } from '../runtime/routes.js';
import { deviceLabel, type EnginePool } from './engine-pool.js';
import { MIME, STATUS, jsonResult, multipartError, parseOptions } from './http.js';
import type { ServiceMetrics } from './service-metrics.js';

export interface RouteLimits {
  /** Requests admitted at once; more get 429. */
  maxQueue: number;
  timeoutMs: number;
  bodyLimit: number;
  maxPixels: number;
  /** Decoded pixels the requests in progress may hold together. */
  pixelBudget: number;
  synthetic: boolean;
}

/** The engine is null until the port is taken; the routes read it on each request. */
export function addRoutes(
  app: FastifyInstance,
  registry: client.Registry,
  m: ServiceMetrics,
  limits: RouteLimits,
  engineNow: () => EnginePool | null,
): void {
  const { maxQueue, timeoutMs, bodyLimit, maxPixels, pixelBudget, synthetic } = limits;
  let pixelsInUse = 0;
  let inflight = 0;
  const latencies: number[] = [];

  const sendError = (reply: FastifyReply, e: unknown, route: string, t0: number) => {
    const err = toGpenLabError(e);
    const status = STATUS[err.code] ?? 500;
    m.errors.inc({ code: err.code });
    m.latency.observe({ route, status: String(status) }, (Date.now() - t0) / 1000);
    if (status === 429 || status === 503) {
      const avg = latencies.length ? latencies.reduce((a, b) => a + b, 0) / latencies.length : 1000;
      void reply.header(
        'Retry-After',
        String(Math.max(1, Math.ceil(status === 503 ? 5 : (avg * Math.max(1, inflight)) / maxQueue / 1000))),
      );
    }
    return reply.code(status).send({
      error: { code: err.code, message: err.message, fix: err.fix },
      ...(synthetic ? { synthetic: true } : {}),
    });
  };

  // the framework's own errors (a body over the limit, a bad header) and unknown routes in the project's shape
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode ?? 500;
    const coded = isGpenLabError(err)
      ? err
      : status === 413
        ? new GpenLabError(
            'E_BODY_TOO_LARGE',
            `The request body is over the limit: ${err.message}`,
            "Send a smaller image (the service's --body-limit-mb).",
            { input: 'body' },
          )
        : status < 500
          ? new GpenLabError(
              'E_ARGUMENT',
              `The request could not be read: ${err.message}`,
              'Send the image as the raw body or as one multipart file.',
              { input: 'body', framework: err.code },
            )
          : err;
    return sendError(reply, coded, req.routeOptions.url ?? req.url, Date.now());
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(
      reply,
      new GpenLabError(
        'E_NOT_FOUND',
        `No route ${req.method} ${req.url}`,
        'The service answers POST /v1/restore, GET /healthz, /readyz, /v1/doctor and /metrics.',
        { input: req.url },
      ),
      'not-found',
      Date.now(),
    ),
  );

  // answered here from this thread's own state: never waits on the engine thread
  app.get('/healthz', async () => ({
    status: 'ok',
    pid: process.pid,
    uptime_s: process.uptime(),
    ...(synthetic ? { synthetic: true } : {}),
  }));
  app.get('/readyz', async (_req, reply) => {
    const engine = engineNow();
    const r = engine?.state === 'ready' ? engine.loaded : null;
    if (r)
      return {
        status: 'ready',
        model: r.info,
        provider: r.choice.provider,
        route: r.choice,
        why: describeChoice(r.choice),
        synthetic,
        ...(engine!.devices[0] !== null ? { devices: engine!.figures() } : {}),
      };
    const failure = engine?.failure ?? null;
    return reply
      .code(503)
      .header('Retry-After', '5')
      .send({ status: failure ? 'failed' : 'loading', ...(failure ? { error: failure.message } : {}) });
  });
  app.get('/v1/doctor', async (req: FastifyRequest<{ Querystring: { probe?: string } }>) =>
    runDoctor({ probe: req.query.probe === '1' || req.query.probe === 'true' }),
  );
  app.get('/metrics', async (_req, reply) => {
    m.queue.set(inflight);
    const engine = engineNow();
    m.waitingFaces.set(engine?.waitingFaces ?? 0);
    for (const f of engine?.figures() ?? []) {
      const device = deviceLabel(f.device);
      m.deviceInFlight.set({ device }, f.inFlight);
      m.deviceDone.set({ device }, f.done);
    }
    return reply.header('Content-Type', registry.contentType).send(await registry.metrics());
  });

  app.post('/v1/restore', async (req, reply) => {
    const t0 = Date.now();
    const route = '/v1/restore';
    const engine = engineNow();
    if (!engine || engine.state !== 'ready') {
      const f = engine?.failure ?? null;
      const loadFailed = engine?.state === 'failed';
      return sendError(
        reply,
        new GpenLabError(
          'E_NOT_READY',
          !f ? 'The model is still loading' : loadFailed ? `The model failed to load: ${f.message}` : f.message,
          !f
            ? 'Retry after the time in Retry-After; GET /readyz says when it is ready.'
            : loadFailed
              ? 'Check the service log and its --model.'
              : f.fix,
        ),
        route,
        t0,
      );
    }
    if (inflight >= maxQueue) {
      return sendError(
        reply,
        new GpenLabError(
          'E_BUSY',
          `The queue is full (${inflight} requests in progress, --max-queue ${maxQueue})`,
          'Retry after the time in Retry-After.',
        ),
        route,
        t0,
      );
    }
    const eng = engine;
    inflight++;
    let timer: NodeJS.Timeout | undefined;
    try {
      let body: Buffer;
      let name = 'upload';
      const fields: Record<string, unknown> = { ...(req.query as Record<string, unknown>) };
      if (req.isMultipart()) {
        let file: Buffer | null = null;
        try {
          for await (const part of req.parts()) {
            if (part.type === 'file') {
              file = await part.toBuffer();
              name = part.filename || name;
            } else fields[part.fieldname] = part.value;
          }
        } catch (e) {
          throw multipartError(e, bodyLimit);
        }
        if (!file)
          throw new GpenLabError(
            'E_ARGUMENT',
            'The multipart request has no file part',
            'Send the image as a file field (any name), or as the raw body.',
            { input: 'body' },
          );
        body = file;
      } else {
        body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      }
      const opts = parseOptions(fields);
      if (body.length === 0)
        throw new GpenLabError(
          'E_FORMAT_UNKNOWN',
          'The request has no image: the body is empty',
          'Send the image bytes as the body (or multipart).',
          { input: 'body' },
        );
      if (!sniffImageFormat(body))
        throw new GpenLabError(
          'E_FORMAT_UNKNOWN',
          `The body is not an image (${body.length} bytes; expected JPEG, PNG, WebP, TIFF or GIF)`,
          'Send a JPEG, PNG, WebP, TIFF or GIF.',
          { input: 'body' },
        );
      // admitted by decoded pixels, not by count: the header says how many this image will hold
      const size = await imageSize(body);
      const pixels = size ? size.width * size.height : 0;
      if (pixels > 0 && pixels <= maxPixels && pixelsInUse + pixels > pixelBudget) {
        const mp = (v: number) => (v / 1e6).toFixed(v < 1e7 ? 2 : 0);
        throw new GpenLabError(
          'E_BUSY',
          `The service holds ${mp(pixelsInUse)} MP of images in progress; this one's ${mp(pixels)} MP would pass its budget of ${mp(pixelBudget)} MP`,
          'Retry after the time in Retry-After.',
          { input: 'body', pixels, budget: pixelBudget },
        );
      }
      pixelsInUse += pixels;
      // the body moves to the engine thread; its pixels are given back when that thread is done with the job, not
      // when its request gave up, so the budget bounds what is really held
      const job = eng.run(body, name, opts);
      void job.output
        .then(
          () => undefined,
          () => undefined,
        )
        .finally(() => {
          pixelsInUse -= pixels;
        });
      // the work stops at its next stage once its request timed out or its client went away
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished)
          eng.cancel(
            job.id,
            new GpenLabError(
              'E_TIMEOUT',
              'The client went away before its image was restored',
              'Nothing to do: the work was dropped.',
            ),
          );
      });
      const timeout = new Promise<never>((_r, reject) => {
        timer = setTimeout(() => {
          const late = new GpenLabError(
            'E_TIMEOUT',
            `The request took longer than ${timeoutMs} ms`,
            'Send a smaller image or retry when the service is less busy.',
          );
          eng.cancel(job.id, late);
          reject(late);
        }, timeoutMs);
      });
      const { result, images } = await Promise.race([job.output, timeout]);
      latencies.push(Date.now() - t0);
      if (latencies.length > 100) latencies.shift();
      m.latency.observe({ route, status: '200' }, (Date.now() - t0) / 1000);
      void reply
        .header('X-Gpen-Faces', String(result.faces.length))
        .header('X-Gpen-Provider', (result.provider.ran ?? [result.provider.asked]).join(','))
        .header(
          'Server-Timing',
          Object.entries(result.stages_ms)
            .map(([k, v]) => `${k};dur=${v.toFixed(1)}`)
            .join(', '),
        );
      if (synthetic) void reply.header('X-Gpen-Synthetic', 'true');
      if ((req.headers.accept ?? '').includes('application/json')) {
        return reply.send(jsonResult(result, images, opts.ext, synthetic));
      }
      return reply.type(MIME[opts.ext]).send(images[0][1]);
    } catch (e) {
      return sendError(reply, e, route, t0);
    } finally {
      clearTimeout(timer);
      inflight--;
    }
  });
}
