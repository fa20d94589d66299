// `gpen-lab worker`, `submit` and `jobs`: restore a photo archive (and run lab cells) across hosts on BullMQ and
// Redis (src/queue). The queue modules load when one of these commands runs.
import { Command, Option } from 'commander';
import { GpenLabError } from '../errors.js';
import { checkAlpha } from '../face/restore.js';
import { OUTPUT_EXTS, type OutputExt } from '../io/image.js';
import { PRECISIONS, PROVIDER_CHOICES, ROUTES, parseChoice } from '../runtime/routes.js';
import type { OutputKind } from '../face/restore.js';
import type { QueueStatus, SubmissionStatus, WorkerStatus } from '../queue/status.js';
import { expandInputs } from './inputs.js';
import { modelSourceOptions, modelSpec, type ModelSourceFlags } from './model-options.js';
import { parseIntArg } from './model.js';
import { info, printJson, progressMode } from './output.js';
import { parseOutputs } from './restore.js';
import { sessionOptions, type SessionFlags } from './runtime-option.js';

interface RedisFlags {
  redis: string;
  redisCa?: string;
  queue: string;
}

function redisOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--redis <url>', 'Redis: redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://... for TLS')
    .option('--redis-ca <file>', 'for rediss://: the CA certificate (PEM) the server is checked against')
    .option('--queue <name>', 'the queue (a worker may serve several: a,b)', 'gpen-lab');
}

/** `--queue`: one name, or for a worker a comma-separated list. */
function queueNames(v: string, several: boolean): string[] {
  const names = several ? v.split(',').map((x) => x.trim()) : [v];
  for (const n of names)
    if (!/^[A-Za-z0-9_.-]+$/.test(n))
      throw new GpenLabError(
        'E_ARGUMENT',
        `--queue ${v}: "${n}" is not a queue name`,
        `Use letters, digits, _ . and -${several ? ' (several: comma-separated)' : ''}.`,
        { input: '--queue' },
      );
  return names;
}

async function target(o: RedisFlags, several = false) {
  const { redisTarget, checkRedis } = await import('../queue/connection.js');
  queueNames(o.queue, several);
  const t = redisTarget(o.redis, o.redisCa);
  await checkRedis(t);
  return t;
}

export function workerCommand(): Command {
  const cmd = redisOptions(
    new Command('worker').description(
      "serve a queue: restore the jobs submitted to it (and run lab cells sent to it) on this host's model and GPU",
    ),
  );
  modelSourceOptions(cmd, 'seeded synthetic GPEN of this size (for measuring only: the faces become noise)');
  sessionOptions(cmd, {
    route: "fast: the measured-best binding and options for the provider; stock: onnxruntime-node's binding",
    precision: 'for a .pth or --synthetic (default: fp16 on a GPU, fp32 on the CPU)',
  });
  return cmd
    .option(
      '--concurrency <n>',
      'jobs in flight on this worker, restored together (their faces batched)',
      parseIntArg('--concurrency'),
      4,
    )
    .option(
      '--allow-commands',
      'run lab command cells and cells that set environment variables (off: refused with E_NOT_ALLOWED)',
    )
    .option(
      '--lock-ms <ms>',
      "how long a job stays this worker's without a sign of life: a killed worker's jobs go to another after about this long",
      parseIntArg('--lock-ms'),
      30000,
    )
    .option('--max-pixels <n>', 'refuse images larger than this (decompression bombs)', parseIntArg('--max-pixels'))
    .option(
      '--devices <list>',
      'all, or GPU indices (0,2): one worker process a GPU, each its own session; the queue feeds whichever is free',
    )
    .addOption(
      new Option('--device-id <n>', 'the GPU of this worker process (set by --devices)')
        .argParser(parseIntArg('--device-id'))
        .hideHelp(),
    )
    .option('--json', 'one JSON object per event (joined, done, failed) on stdout')
    .action(
      async (
        o: RedisFlags &
          ModelSourceFlags &
          SessionFlags & {
            concurrency: number;
            allowCommands?: boolean;
            lockMs: number;
            maxPixels?: number;
            json?: boolean;
            devices?: string;
            deviceId?: number;
          },
      ) => {
        if (o.model === undefined && o.synthetic === undefined)
          throw new GpenLabError(
            'E_ARGUMENT',
            'worker needs GPEN weights and none were given',
            'Pass --model FILE (the weights every worker of the queue loads), or --synthetic SIZE to measure.',
            { input: '--model' },
          );
        if (o.concurrency < 1 || o.concurrency > 256)
          throw new GpenLabError('E_ARGUMENT', `--concurrency ${o.concurrency} is out of range`, 'Pass 1 to 256.', {
            input: '--concurrency',
          });
        const t = await target(o, true);
        if (o.devices !== undefined) {
          const { devicesHere } = await import('../doctor/devices.js');
          process.exitCode = await perDevice(await devicesHere(o.devices));
          return;
        }
        const { startWorker } = await import('../queue/worker.js');
        const say = (line: string, obj: Record<string, unknown>) =>
          o.json ? printJson(obj) : process.stdout.write(`${line}\n`);
        const w = await startWorker({
          redis: t,
          queues: queueNames(o.queue, true),
          concurrency: o.concurrency,
          allowCommands: !!o.allowCommands,
          lockMs: o.lockMs,
          device: o.deviceId ?? null,
          model: modelSpec(o),
          session: {
            provider: parseChoice(PROVIDER_CHOICES, o.provider, '--provider'),
            route: parseChoice(ROUTES, o.route, '--route'),
            ...(o.runtime !== undefined ? { runtime: o.runtime } : {}),
            ...(o.precision !== undefined ? { precision: parseChoice(PRECISIONS, o.precision, '--precision') } : {}),
            ...(o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : {}),
          },
          onEvent: (e) => {
            if (e.type === 'joined')
              say(
                `worker ${e.info.id} joined queue ${e.info.queues.join(', ')} at ${t.shown}: ${e.info.model.label} (${e.info.model.id}), ${e.info.choice}${e.info.runtime ? `, ${e.info.runtime}` : ''}, concurrency ${e.info.concurrency}${e.info.allowCommands ? ', commands allowed' : ''}`,
                { event: 'joined', ...e.info },
              );
            else if (e.type === 'done')
              say(`done ${e.input}${'output' in e.result && e.result.output ? ` -> ${e.result.output}` : ''}`, {
                event: 'done',
                ...e,
              });
            else
              say(`${e.final ? 'failed' : 'will retry'} ${e.input}: [${e.code}] ${e.message}`, {
                event: 'failed',
                ...e,
              });
          },
        });
        // SIGTERM or Ctrl-C: the jobs in flight finish, then the worker leaves the queue
        await new Promise<void>((resolve) => {
          const stop = () => resolve();
          process.once('SIGTERM', stop);
          process.once('SIGINT', stop);
        });
        info(`worker ${w.info.id}: finishing the jobs in flight, then leaving`);
        await w.close();
      },
    );
}

/**
 * `worker --devices`: this command again once per GPU, each with --device-id (its own process: a session per GPU, as
 * the C API route's per-thread state needs); their lines on this one's stdout; SIGTERM and Ctrl-C passed on. The
 * exit status is the highest of theirs.
 */
async function perDevice(devices: number[]): Promise<number> {
  const { spawn } = await import('node:child_process');
  const argv = process.argv.slice(2);
  const own: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--devices') i++;
    else if (!argv[i].startsWith('--devices=')) own.push(argv[i]);
  }
  info(`worker: one process for each of GPU ${devices.join(', ')}`);
  const children = devices.map((d) =>
    spawn(process.execPath, [...process.execArgv, process.argv[1], ...own, '--device-id', String(d)], {
      stdio: 'inherit',
    }),
  );
  const pass = (sig: NodeJS.Signals) => () => children.forEach((c) => c.kill(sig));
  process.once('SIGTERM', pass('SIGTERM'));
  process.once('SIGINT', pass('SIGINT'));
  const codes = await Promise.all(
    children.map((c) => new Promise<number>((resolve) => c.once('exit', (code) => resolve(code ?? 1)))),
  );
  return Math.max(...codes);
}

function line(s: SubmissionStatus, workers: WorkerStatus[], rates: Map<string, number>, t0: number): string {
  const finished = s.done + s.failed;
  const secs = (Date.now() - t0) / 1000;
  const rate = secs > 0 ? s.done / secs : 0;
  const eta = rate > 0 ? `${Math.ceil((s.queued - finished) / rate)} s` : '?';
  const width = 20;
  const filled = Math.round((width * finished) / Math.max(1, s.queued));
  const per = workers.map((w) => `${w.id} ${w.done} (${(rates.get(w.id) ?? 0).toFixed(1)}/s)`).join(', ');
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${s.done} done, ${s.failed} failed of ${s.queued}, ${rate.toFixed(1)}/s, ETA ${eta}${per ? ` | ${per}` : ''}`;
}

/** Follows a submission until every job it queued is done or failed: a bar on a terminal, a line a second elsewhere. */
async function follow(
  view: import('../queue/status.js').QueueView,
  id: string,
  json: boolean,
): Promise<SubmissionStatus> {
  const { submissionStatus, workerStatuses } = await import('../queue/status.js');
  const mode = progressMode(json);
  const t0 = Date.now();
  const start = new Map<string, number>();
  let last = '';
  let lastAt = 0;
  for (;;) {
    const s = (await submissionStatus(view.redis, view.queue, id))!;
    const workers = await workerStatuses(view.redis, view.queue);
    const rates = new Map<string, number>();
    for (const w of workers) {
      if (!start.has(w.id)) start.set(w.id, w.done);
      rates.set(w.id, (w.done - start.get(w.id)!) / Math.max(0.001, (Date.now() - t0) / 1000));
    }
    const text = line(s, workers, rates, t0);
    if (mode === 'tty') process.stderr.write(`\r\x1b[2K${text.slice(0, (process.stderr.columns || 100) - 1)}`);
    else if (mode === 'lines') {
      // a line every 2 s while the counts change, every 10 s while they do not, and the last one
      const counts = `${s.done}/${s.failed}`;
      const since = Date.now() - lastAt;
      if ((counts !== last && since >= 2000) || since >= 10_000 || s.done + s.failed >= s.queued) {
        process.stderr.write(`${text}\n`);
        last = counts;
        lastAt = Date.now();
      }
    }
    if (s.done + s.failed >= s.queued) {
      if (mode === 'tty') process.stderr.write('\n');
      return s;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

export function submitCommand(): Command {
  const cmd = redisOptions(
    new Command('submit')
      .description('put photos on a queue as restore jobs for its workers (storage every worker sees); follows them')
      .argument('<input...>', 'image files or folders')
      .requiredOption('-o, --out <dir>', 'output folder (seen by every worker)'),
  );
  return cmd
    .option('--model <file>', "the weights the jobs are for (default: the model the queue's workers serve)")
    .option('--synthetic <size>', 'jobs for seeded synthetic GPEN of this size', parseIntArg('--synthetic'))
    .option('--seed <s>', 'seed of --synthetic weights', parseIntArg('--seed'), 0)
    .option('--alpha <a>', 'blend of restored (1) and original (0) face', (v: string) => checkAlpha(v), 1)
    .option('--aligned', 'inputs are square aligned faces: GAN only')
    .addOption(
      new Option('--outputs <list>', 'files per image: gpen, comp, faces')
        .argParser(parseOutputs)
        .default(['gpen'], 'gpen'),
    )
    .addOption(new Option('--ext <ext>', "output format (default: the input's)").choices([...OUTPUT_EXTS]))
    .option('--overwrite', 'replace output files that are already there')
    .option(
      '--attempts <n>',
      'tries of a job whose failure may pass (runtime, storage), with backoff',
      parseIntArg('--attempts'),
      3,
    )
    .option('--no-wait', 'return once the jobs are queued (follow them with gpen-lab jobs --watch)')
    .option('--json', 'the submission, and its end, as JSON on stdout')
    .action(
      async (
        inputs: string[],
        o: RedisFlags & {
          out: string;
          model?: string;
          synthetic?: number;
          seed: number;
          alpha: number;
          aligned?: boolean;
          outputs: OutputKind[];
          ext?: OutputExt;
          overwrite?: boolean;
          attempts: number;
          wait: boolean;
          json?: boolean;
        },
      ) => {
        const t = await target(o);
        const { files } = await expandInputs(inputs);
        const { submit } = await import('../queue/submit.js');
        const { modelId } = await import('../queue/jobs.js');
        const { QueueView } = await import('../queue/status.js');
        const model =
          o.model !== undefined
            ? await modelId({ type: 'file', file: o.model })
            : o.synthetic !== undefined
              ? await modelId({ type: 'synthetic', size: o.synthetic, seed: o.seed })
              : undefined;
        const s = await submit({
          redis: t,
          queue: o.queue,
          files,
          outDir: o.out,
          ...(model ? { model } : {}),
          options: {
            alpha: o.alpha,
            aligned: !!o.aligned,
            outputs: o.outputs,
            ext: o.ext ?? null,
            overwrite: !!o.overwrite,
          },
          attempts: o.attempts,
          onProgress: (l) => info(l),
        });
        if (o.json) printJson({ submission: s });
        else
          process.stdout.write(
            `submission ${s.id} on queue ${s.queue}: ${s.queued} job(s) queued, ${s.skippedDone} done before, ${s.skippedQueued} already queued (model ${s.model})\n`,
          );
        if (!o.wait || s.queued === 0) return;
        const view = new QueueView(t, o.queue);
        try {
          const end = await follow(view, s.id, !!o.json);
          if (o.json) printJson({ end });
          else process.stdout.write(`submission ${s.id}: ${end.done} done, ${end.failed} failed\n`);
          if (end.failed > 0) {
            process.stderr.write(
              `${end.failed} job(s) failed: gpen-lab jobs --redis URL shows them with their codes\n`,
            );
            process.exitCode = 3;
          }
        } finally {
          await view.close();
        }
      },
    );
}

function printStatus(s: QueueStatus): void {
  const out: string[] = [];
  out.push(`queue ${s.queue} at ${s.redis}`);
  out.push(
    `  jobs: ${Object.entries(s.counts)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ')}; ${s.doneRecords} recorded done`,
  );
  out.push(`  workers (${s.workers.length}):`);
  for (const w of s.workers)
    out.push(
      `    ${w.id}: ${w.model.label}, ${w.choice}, ${w.done} done, ${w.failed} failed, seen ${Math.round((Date.now() - Date.parse(w.lastSeen)) / 1000)} s ago`,
    );
  out.push(`  submissions:`);
  for (const x of s.submissions)
    out.push(
      `    ${x.id}: ${x.done} done, ${x.failed} failed of ${x.queued} queued (${x.total} inputs, ${x.skippedDone} done before)`,
    );
  if (s.failures.length) {
    out.push(`  failed jobs (${s.failures.length} shown):`);
    for (const f of s.failures)
      out.push(`    ${f.input}: [${f.code}] ${f.message}${f.fix ? `\n      fix: ${f.fix}` : ''}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

export function jobsCommand(): Command {
  return redisOptions(
    new Command('jobs').description("a queue's jobs, workers and submissions; its failures with their codes"),
  )
    .option('--watch [submission]', "follow a submission's progress (default: the latest)")
    .option('--retry', 'put every failed job back on the queue')
    .option('--trim', 'remove completed jobs from Redis (their done records stay: resubmitting does nothing)')
    .option('--json', 'the status as JSON on stdout')
    .action(async (o: RedisFlags & { watch?: string | true; retry?: boolean; trim?: boolean; json?: boolean }) => {
      const t = await target(o);
      const { QueueView } = await import('../queue/status.js');
      const view = new QueueView(t, o.queue);
      try {
        if (o.retry) info(`${await view.retryFailed()} failed job(s) put back on the queue`);
        if (o.trim) info(`${await view.trimCompleted()} completed job(s) removed`);
        if (o.watch) {
          const id = o.watch === true ? (await view.status({ submissions: 1 })).submissions[0]?.id : o.watch;
          if (!id)
            throw new GpenLabError('E_ARGUMENT', `queue ${o.queue} has no submission to follow`, 'Submit first.', {
              input: '--watch',
            });
          await follow(view, id, !!o.json);
        }
        const s = await view.status();
        if (o.json) printJson(s);
        else printStatus(s);
      } finally {
        await view.close();
      }
    });
}
