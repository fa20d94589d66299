// `gpen-lab lab [CONFIG] [--out DIR] [--resume] [--json]` and `gpen-lab report RESULTS.json [--out DIR]`.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { GpenLabError } from '../errors.js';
import type { LabMachine } from '../lab/config.js';
import type { Provider } from '../runtime/providers.js';
import { knownProviders } from '../runtime/session.js';
import { DEMO_FACE, DEMO_PHOTO } from './demo.js';
import { Steps, printJson } from './output.js';

const stamp = (d = new Date()): string => d.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);

/** The newest lab folder in the current directory (for --resume without --out). */
function latestLab(): string | null {
  const dirs = readdirSync('.').filter((n) => n.startsWith('gpen-lab-') && existsSync(path.join(n, 'results.json')));
  dirs.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return dirs[0] ?? null;
}

/** What the default lab is made for: the providers the binary knows, the GPU providers installed, an NVIDIA GPU. */
async function labMachine(): Promise<LabMachine> {
  const { availableNow } = await import('../face/choose.js');
  const { readGpus } = await import('../doctor/gpu.js');
  const installed: Provider[] = [];
  for (const p of ['cuda', 'tensorrt'] as const) if ((await availableNow[p]()) === null) installed.push(p);
  const gpus = await readGpus();
  const { installedBuilds } = await import('../runtime/builds.js');
  return {
    knownByBinary: knownProviders().map((p) => p.provider),
    installed,
    gpu: gpus.source !== 'none' && gpus.devices.length > 0,
    builds: installedBuilds(),
  };
}

export function labCommand(): Command {
  return new Command('lab')
    .description('the compatibility matrix: every environment (cell) in fresh processes, one report')
    .argument(
      '[config]',
      "a lab config (.json or .yaml, schema/lab.schema.json); default: what this machine can run (with a GPU: each installed GPU provider's fast route in fp16 and fp32 against its stock route in fp32, and cpu fp32)",
    )
    .option(
      '--out <dir>',
      'folder for results.json, report.md, report.html and the images (default: a new dated folder)',
    )
    .option(
      '--resume',
      'continue an interrupted lab in --out (default: the newest lab folder here) without re-running completed cells',
    )
    .option('--redis <url>', "Redis for cells whose launcher is a queue (default: the launcher's own redis)")
    .option('--redis-ca <file>', 'for rediss://: the CA certificate (PEM) the server is checked against')
    .option('--json', 'print results.json on stdout')
    .action(
      async (
        config: string | undefined,
        o: { out?: string; resume?: boolean; json?: boolean; redis?: string; redisCa?: string },
      ) => {
        let out = o.out;
        if (o.resume && !out) {
          out = latestLab() ?? undefined;
          if (!out)
            throw new GpenLabError(
              'E_FILE_MISSING',
              'lab --resume: no lab folder with a results.json in the current directory',
              'Pass --out DIR, the folder of the lab to continue.',
              { input: '--resume' },
            );
        }
        out ??= `gpen-lab-${stamp()}`;
        // the lab's modules (ajv, yaml, the report) load on use: they would slow every other command's start
        const { defaultConfig, readConfig } = await import('../lab/config.js');
        const { cellPassed, runLab, stopCells } = await import('../lab/runner.js');
        const { headline } = await import('../lab/analyse.js');
        // cells die with the lab; what finished is in results.json already
        for (const [signal, code] of [
          ['SIGTERM', 143],
          ['SIGINT', 130],
        ] as const) {
          process.once(signal, () => {
            // the lab exits once its cells have: no process of it outlives it
            void stopCells().then(() => {
              process.stderr.write(
                `lab stopped by ${signal}: the cells finished so far are in ${path.join(out!, 'results.json')} (--resume continues)\n`,
              );
              process.exit(code);
            });
          });
        }
        const cfg = config ? readConfig(config) : defaultConfig(DEMO_FACE, DEMO_PHOTO, await labMachine());
        const steps = new Steps(cfg.cells.length * cfg.coldRuns, false);
        const tty = process.stderr.isTTY && !process.env.CI;
        const queued = cfg.cells.some((c) => c.launcher?.type === 'queue');
        const res = await runLab(cfg, {
          out,
          resume: o.resume,
          ...(queued
            ? {
                queueCell: (await import('../queue/lab-queue.js')).queueCellRunner({
                  ...(o.redis ? { url: o.redis } : {}),
                  ...(o.redisCa ? { ca: o.redisCa } : {}),
                }),
              }
            : {}),
          onProgress: (e) => {
            if (tty) {
              if (/^run \d+\/\d+/.test(e.line)) steps.step(`${e.cell} ${e.line}`);
            } else
              process.stderr.write(
                `${e.index < 0 ? '[model]' : `[cell ${e.index + 1}/${e.total}]`} ${e.cell}: ${e.line}\n`,
              );
          },
        });
        steps.done();
        // a lab in which no cell passed is a failure of the machine under test: exit 3, like a runtime failure
        if (!res.cells.some(cellPassed)) process.exitCode = 3;
        const files = { md: path.join(out, 'report.md'), html: path.join(out, 'report.html') };
        if (o.json) printJson(res);
        else {
          process.stdout.write(
            `${headline(res)}\n${res.recommendations.map((r) => `- ${r}`).join('\n')}\n` +
              `results: ${path.join(out, 'results.json')}\nreport:  ${files.md}\n         ${files.html}\n`,
          );
        }
      },
    );
}

/** `gpen-lab cell-run JOB.json`: one run of a lab cell in this process, as the lab starts it on another host (ssh). */
export function cellRunCommand(): Command {
  return new Command('cell-run')
    .description('one run of a lab cell from its job file (the lab starts it, here or on another host over ssh)')
    .argument('<job>', 'the job file the lab wrote')
    .action(async (job: string) => {
      // cell-child reads its job from argv[2] and prints its @@lab lines on stdout
      process.argv.splice(2, process.argv.length - 2, path.resolve(job));
      await import('../lab/cell-child.js');
    });
}

export function reportCommand(): Command {
  return new Command('report')
    .description("re-render report.md and report.html from a lab's results.json alone")
    .argument('<results>', 'results.json written by gpen-lab lab')
    .option('--out <dir>', 'where to write the reports (default: beside results.json)')
    .action(async (file: string, o: { out?: string }) => {
      const { readResults, recommend } = await import('../lab/runner.js');
      const { deriveFlags } = await import('../lab/analyse.js');
      const { writeReport } = await import('../lab/report.js');
      const res = readResults(file);
      // derived from the cells alone: made again, so a report shows the current reading of the same measurements
      deriveFlags(res);
      res.recommendations = recommend(res);
      const out = path.resolve(o.out ?? path.dirname(file));
      const files = await writeReport(res, out);
      process.stdout.write(`report: ${files.md}\n        ${files.html}\n`);
    });
}
