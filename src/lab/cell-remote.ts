// A gpen-lab cell on another host over ssh: the doctor run there for its dependency stage, and each run's job
// rewritten for that host (its inputs, the model file and the job copied into the launcher's work folder), started
// as `gpen-lab cell-run JOB` there, its outputs copied back and the paths in its results made this host's again.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DoctorReport } from '../doctor/index.js';
import type { RestoreResult } from '../face/restore.js';
import { runHere, sshLauncher } from './launch-ssh.js';
import type { CellLauncher } from './launchers.js';
import type { CellJob, Launcher } from './types.js';

type Ssh = Extract<Launcher, { type: 'ssh' }>;

export interface RemoteCell {
  launcher: CellLauncher;
  /** The doctor's report there for `provider`, or why there is none (gpen-lab not installed there, ssh failing). */
  doctor(provider: string, vars: Record<string, string>): Promise<DoctorReport | { error: string; fix: string }>;
  /** The run's job made that host's, sent there; what to spawn here to start it. */
  prepare(job: CellJob, jobFile: string, vars: Record<string, string>): Promise<{ file: string; args: string[] }>;
  /** The run's results with this host's paths, its outputs fetched into the cell's folder. */
  finish(results: RestoreResult[]): Promise<RestoreResult[]>;
}

export function remoteCell(l: Ssh, ctx: { cellId: string; cellDir: string; inputs: string[] }): RemoteCell {
  const launcher = sshLauncher(l, ctx);
  const gpenLab = l.gpenLab ?? ['gpen-lab'];
  const back = new Map<string, string>();
  let localOut = '';
  let remoteOut = '';
  return {
    launcher,
    async doctor(provider, vars) {
      const s = launcher.spawn(
        [...gpenLab, 'doctor', '--provider', provider, '--no-probe', '--json'],
        vars,
        ctx.cellId,
      );
      const r = await runHere(s.file, s.args);
      try {
        return JSON.parse(r.out) as DoctorReport;
      } catch {
        const said = r.err.trim().split('\n').slice(-1)[0] ?? '';
        return r.code === 255
          ? {
              error: `ssh to ${l.host} failed: ${said}`,
              fix: launcher.diagnose({ spawnError: null, exitCode: 255, stderr: r.err })?.fix ?? '',
            }
          : {
              error: `gpen-lab's doctor did not answer on ${l.host} (${gpenLab.join(' ')}: exit ${r.code}${said ? `, ${said}` : ''})`,
              fix: `install gpen-lab on ${l.host} (npm install -g gpen-lab), or set the launcher's gpenLab to how it starts there`,
            };
      }
    },
    async prepare(job, jobFile, vars) {
      const files = [...job.inputs, ...(job.model.type === 'file' ? [job.model.file] : [])];
      for (const f of job.inputs) back.set(launcher.inputPath(f), f);
      localOut = job.outDir;
      remoteOut = launcher.outputPath(job.outDir);
      const remote: CellJob = {
        ...job,
        inputs: job.inputs.map((f) => launcher.inputPath(f)),
        outDir: remoteOut,
        model:
          job.model.type === 'file'
            ? { ...job.model, file: launcher.inputPath(job.model.file) }
            : job.model.type === 'synthetic'
              ? { ...job.model, cacheDir: path.posix.join(path.posix.dirname(remoteOut), '.cache') }
              : job.model,
      };
      writeFileSync(jobFile, JSON.stringify(remote));
      await launcher.send([...files, jobFile]);
      const s = launcher.spawn([...gpenLab, 'cell-run', launcher.inputPath(jobFile)], vars, `${ctx.cellId}`);
      return { file: s.file, args: s.args };
    },
    async finish(results) {
      const out: RestoreResult[] = [];
      for (const r of results) {
        const here = (p: string | null) => (p ? path.join(localOut, path.posix.relative(remoteOut, p)) : null);
        const gpen = here(r.outputs.gpen);
        if (gpen) await launcher.fetch([gpen]);
        out.push({ ...r, input: back.get(r.input) ?? r.input, outputs: { gpen, comp: null, faces: [] } });
      }
      return out;
    },
  };
}
