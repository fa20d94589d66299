// `gpen-lab models [--json]` and `gpen-lab models get NAME`: the official weights of upstream GPEN, what gpen-lab runs
// of them, and fetching one into the models folder (resumed, checked, recorded).
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { GpenLabError, checkNumber } from '../errors.js';
import type { CatalogEntry } from '../model/catalog.js';
import { CATALOG, baseUrlOverride, catalogEntry, modelsDir, urlFor } from '../model/catalog.js';
import type { Progress } from '../model/download.js';
import { DEFAULT_STALL_MS, getModel } from '../model/download.js';
import { readRecord } from '../model/fetched.js';
import { info, printJson, warn } from './output.js';

export interface ListedModel extends CatalogEntry {
  /** The URL `models get` would fetch (a --url or GPEN_LAB_MODELS_URL base applied), null where there is none. */
  getUrl: string | null;
  /** The file in the models folder: with its record (`models get` wrote it), or without (put there by hand); null: absent. */
  fetched: {
    file: string;
    recorded: boolean;
    size: number | null;
    sha256: string | null;
    fetchedAt: string | null;
  } | null;
}

/** The catalog as `models --json` prints it: one object per entry, and whether it is in `dir`. No file is read or hashed. */
export async function listModels(
  dir: string,
  base: string | null = baseUrlOverride(),
): Promise<{ dir: string; baseUrl: string | null; models: ListedModel[] }> {
  const models: ListedModel[] = [];
  for (const e of CATALOG) {
    const file = path.join(dir, e.file);
    const record = existsSync(file) ? await readRecord(file) : null;
    models.push({
      ...e,
      getUrl: urlFor(e, base),
      fetched: existsSync(file)
        ? {
            file,
            recorded: record !== null,
            size: record?.size ?? null,
            sha256: record?.sha256 ?? null,
            fetchedAt: record?.fetchedAt ?? null,
          }
        : null,
    });
  }
  return { dir, baseUrl: base, models };
}

function mb(n: number): string {
  return (n / 1e6).toFixed(1);
}

/** Bytes as they come: a bar on a TTY, otherwise a plain line at each tenth (each 32 MB where the size is unknown). */
function progressReporter(name: string, quiet: boolean): { update: (p: Progress) => void; stop: () => void } {
  if (quiet) return { update: () => undefined, stop: () => undefined };
  const t0 = Date.now();
  const rate = (p: Progress) => `${mb((p.received - p.resumedFrom) / Math.max(0.001, (Date.now() - t0) / 1000))} MB/s`;
  if (process.stderr.isTTY && !process.env.CI) {
    let bar: cliProgress.SingleBar | null = null;
    return {
      update: (p) => {
        if (!bar) {
          bar = new cliProgress.SingleBar(
            { stream: process.stderr, hideCursor: true, format: `${name} {bar} {percentage}% {got}/{all} MB {rate}` },
            cliProgress.Presets.shades_classic,
          );
          bar.start(p.total ?? 0, p.received, {
            got: mb(p.received),
            all: p.total !== null ? mb(p.total) : '?',
            rate: '',
          });
        }
        bar.update(p.received, { got: mb(p.received), all: p.total !== null ? mb(p.total) : '?', rate: rate(p) });
      },
      stop: () => bar?.stop(),
    };
  }
  let shown = -1;
  return {
    update: (p) => {
      const step = p.total ? Math.floor((10 * p.received) / p.total) : Math.floor(p.received / 32e6);
      if (step === shown) return;
      if (shown === -1 && p.resumedFrom > 0) info(`${name}: resuming at byte ${p.resumedFrom}`);
      shown = step;
      info(
        `${name}: ${mb(p.received)}${p.total ? ` of ${mb(p.total)} MB (${Math.floor((100 * p.received) / p.total)}%)` : ' MB'}, ${rate(p)}`,
      );
    },
    stop: () => undefined,
  };
}

function sizeText(e: CatalogEntry): string {
  return e.size !== null ? `${e.size.toLocaleString('en-US')} B` : 'size unknown';
}

function parseSeconds(v: string): number {
  return checkNumber('--stall-timeout', v, { min: 0, above: true }, 'Pass --stall-timeout 30 (seconds), for example.');
}

export function modelsCommand(): Command {
  const models = new Command('models').description(
    'the official GPEN weights (upstream yangxy/GPEN), what gpen-lab runs of them, and `models get NAME` to fetch one',
  );

  // the default subcommand, so that `models --json` lists and `models get NAME --json` gives --json to get
  models
    .command('list', { isDefault: true })
    .description(
      'the catalog: name, size, where upstream publishes it, whether gpen-lab runs it, whether it is fetched',
    )
    .option('--dir <dir>', "the models folder (default: $GPEN_LAB_MODELS, else the cache's models/)")
    .option(
      '--url <base>',
      "base URL to fetch <base>/<file> from (default: $GPEN_LAB_MODELS_URL, else upstream's links)",
    )
    .option('--json', 'machine-readable output')
    .action(async (o: { dir?: string; url?: string; json?: boolean }) => {
      const listed = await listModels(o.dir ?? modelsDir(), o.url ?? baseUrlOverride());
      if (o.json) {
        printJson(listed);
        return;
      }
      const out = [`models folder: ${listed.dir}`, ''];
      for (const m of listed.models) {
        out.push(
          `${m.name.padEnd(24)} ${sizeText(m).padEnd(16)} runs: ${m.runnable ? 'yes' : 'no '}  ${m.fetched ? (m.fetched.recorded ? 'fetched' : 'present (not fetched by gpen-lab)') : 'not fetched'}`,
        );
        out.push(`    ${m.task}; ${m.runs}`);
        out.push(`    ${m.getUrl ?? m.source}`);
      }
      out.push('', 'Fetch one with `gpen-lab models get NAME`, then restore with `--model NAME` (docs/models.md).');
      process.stdout.write(out.join('\n') + '\n');
    });

  models
    .command('get')
    .description('download one of the official weights: resumed after a cut, its size checked, its sha256 recorded')
    .argument('<name>', 'a name `gpen-lab models` lists (GPEN-BFR-512, ...)')
    .option('--dir <dir>', "where to put it (default: $GPEN_LAB_MODELS, else the cache's models/)")
    .option(
      '--url <base>',
      "base URL to fetch <base>/<file> from (a mirror; default: $GPEN_LAB_MODELS_URL, else upstream's link)",
    )
    .option('--force', 'fetch again even where a checked file is there')
    .option(
      '--stall-timeout <s>',
      `give up when nothing arrives for this many seconds (default ${DEFAULT_STALL_MS / 1000})`,
      parseSeconds,
    )
    .option('--json', 'machine-readable output')
    .action(
      async (
        name: string,
        o: { dir?: string; url?: string; force?: boolean; stallTimeout?: number; json?: boolean },
      ) => {
        const entry = catalogEntry(name);
        if (!entry) {
          throw new GpenLabError(
            'E_ARGUMENT',
            `${JSON.stringify(name)} is none of the official weights gpen-lab knows`,
            `Pass one of: ${CATALOG.map((e) => e.name).join(', ')} (\`gpen-lab models\` describes them).`,
            { input: name },
          );
        }
        const dir = o.dir ?? modelsDir();
        const progress = progressReporter(entry.name, o.json === true);
        let r;
        try {
          r = await getModel(entry, {
            dir,
            baseUrl: o.url ?? null,
            force: o.force === true,
            onProgress: progress.update,
            ...(o.stallTimeout !== undefined ? { stallMs: o.stallTimeout * 1000 } : {}),
          });
        } finally {
          progress.stop();
        }
        if (o.json) {
          printJson(r);
          return;
        }
        const inDefault = path.resolve(dir) === path.resolve(modelsDir());
        process.stdout.write(
          `${entry.name}: ${r.alreadyThere ? 'already there, checked' : `fetched from ${r.url}${r.resumedFrom > 0 ? ` (resumed at byte ${r.resumedFrom})` : ''}`} -> ${r.file}\n` +
            `  ${r.size.toLocaleString('en-US')} bytes, sha256 ${r.sha256} (recorded in ${path.basename(r.file)}.json)\n`,
        );
        if (entry.runnable)
          info(`restore with: gpen-lab restore PHOTO -o OUT --model ${inDefault ? entry.name : r.file}`);
        else warn(`gpen-lab does not run ${entry.name}: ${entry.runs.replace(/^no: /, '')}`);
      },
    );
  return models;
}
