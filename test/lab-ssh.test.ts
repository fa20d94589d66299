// The ssh launcher against a real OpenSSH server on loopback (test/helpers/sshd.ts): a command cell run on "another
// host" that is this machine, its input sent there with scp, its output copied back with scp and compared; and ssh's
// own failures as the launcher's findings with their fix: a key the server refuses, a host key that is not the one
// known, a port where nothing listens.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCell } from '../src/lab/cell.js';
import { runCommandCell } from '../src/lab/command-cell.js';
import type { CellSpec, LabConfig, Launcher } from '../src/lab/types.js';
import { freePort, keygen, publicKeyOf, startSshd, type Sshd } from './helpers/sshd.js';

const FACE = path.resolve('assets/demo-face.png');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-lab-ssh-'));
const script = path.join(tmp, 'copy.mjs');
let sshd: Sshd;

before(async () => {
  sshd = await startSshd();
  // argv: INPUT OUTPUT; copies the input to the output and says how long its inference took
  writeFileSync(
    script,
    `import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
const [input, output] = process.argv.slice(2);
mkdirSync(path.dirname(output), { recursive: true });
copyFileSync(input, output);
console.log('@@gpen-lab stage infer 12.5');
`,
  );
});

after(async () => {
  await sshd?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

type Ssh = Extract<Launcher, { type: 'ssh' }>;

const cellOf = (id: string, over: Partial<Ssh> = {}): CellSpec & { launcher: Ssh } => ({
  id,
  provider: 'cpu',
  route: 'fast',
  precision: 'fp32',
  gpu: false,
  command: {
    argv: [process.execPath, script, '{input}', '{output}'],
    probes: { startup: [process.execPath, '-e', 'console.log(process.version)'] },
  },
  launcher: {
    type: 'ssh',
    host: '127.0.0.1',
    port: sshd.port,
    user: sshd.user,
    key: sshd.key,
    knownHosts: sshd.knownHosts,
    workDir: mkdtempSync(path.join(tmp, 'remote-')),
    ...over,
  },
});

const cfgOf = (cell: CellSpec): LabConfig => ({
  inputs: [FACE],
  model: { identity: 64 },
  coldRuns: 2,
  warmRuns: 0,
  timeoutSec: 60,
  cells: [cell],
});

const run = (cell: CellSpec, outDir: string) => runCommandCell(cell, cfgOf(cell), outDir, 'no GPU', () => undefined);

const sshFinding = (r: Awaited<ReturnType<typeof run>>) => {
  const f = r.doctor?.findings.find((x) => x.id === 'launcher-ssh-failed');
  assert.ok(f, `a launcher-ssh-failed finding: ${JSON.stringify(r.doctor?.findings)} ${JSON.stringify(r.stages)}`);
  return f;
};

describe('the ssh launcher against a real sshd', () => {
  it('runs a command cell over ssh: the input sent with scp, the output copied back and compared', async () => {
    const cell = cellOf('copy-ssh');
    const outDir = path.join(tmp, 'lab-ok');
    const r = await run(cell, outDir);
    assert.equal(r.stages.startup?.ok, true, JSON.stringify(r.stages));
    assert.equal(r.stages.inference?.ok, true, JSON.stringify(r.stages));
    assert.equal(r.stages.output?.ok, true, JSON.stringify(r.stages));
    assert.equal(r.runs.length, 2);
    assert.ok(
      r.runs.every((x) => x.ok),
      JSON.stringify(r.runs),
    );
    assert.match(r.env.launcher, /^ssh .*@127\.0\.0\.1:\d+$/);
    assert.equal(r.env.host, '127.0.0.1');
    assert.equal(r.cold.stages.infer?.median, 12.5);
    const output = r.commandOutputs?.[0]?.output;
    assert.ok(output, 'an output');
    const rel = path.relative(path.resolve(outDir), path.resolve(output));
    assert.ok(rel && !rel.startsWith('..') && !path.isAbsolute(rel), `${output} is inside ${outDir}`);
    assert.ok(readFileSync(output).equals(readFileSync(FACE)), 'the output copied back is the input');
    assert.equal(r.output.psnr, 100);
    // the launcher sent the input with scp into its work folder there
    const sent = path.join(cell.launcher.workDir!, cell.id, 'in', `0-${path.basename(FACE)}`);
    assert.ok(existsSync(sent), `${sent} was sent`);
    assert.ok(readFileSync(sent).equals(readFileSync(FACE)));
  });

  it('a key the server does not accept: the cell fails at startup, the fix is ssh-copy-id', async () => {
    const other = path.join(tmp, 'other_ed25519');
    await keygen(other);
    const r = await run(cellOf('wrong-key', { key: other }), path.join(tmp, 'lab-wrong-key'));
    assert.equal(r.stages.startup?.ok, false, JSON.stringify(r.stages));
    assert.equal(r.runs.filter((x) => x.ok).length, 0);
    const f = sshFinding(r);
    assert.match(f.message, /Permission denied/);
    assert.match(f.fix ?? '', /ssh-copy-id/);
  });

  it('a host key other than the one known: the cell fails at startup, the fix is ssh-keygen -R then ssh-keyscan', async () => {
    const otherHost = path.join(tmp, 'other_host_ed25519');
    await keygen(otherHost);
    const knownHosts = path.join(tmp, 'other_known_hosts');
    writeFileSync(knownHosts, `[127.0.0.1]:${sshd.port} ${publicKeyOf(`${otherHost}.pub`)}\n`);
    const r = await run(cellOf('unknown-host', { knownHosts }), path.join(tmp, 'lab-unknown-host'));
    assert.equal(r.stages.startup?.ok, false, JSON.stringify(r.stages));
    const f = sshFinding(r);
    assert.match(f.message, /Host key for \[127\.0\.0\.1\]:\d+ has changed/);
    assert.match(f.fix ?? '', /ssh-keygen -f .* -R '\[127\.0\.0\.1\]:\d+' && ssh-keyscan -p \d+ 127\.0\.0\.1 >> /);
  });

  it('a port where nothing listens: the cell fails at startup, connection refused', async () => {
    const port = await freePort();
    const r = await run(cellOf('refused', { port }), path.join(tmp, 'lab-refused'));
    assert.equal(r.stages.startup?.ok, false, JSON.stringify(r.stages));
    const f = sshFinding(r);
    assert.match(f.message, /refused/i);
  });

  it('runs a gpen-lab cell over ssh: the doctor there for its dependencies, the job there, the outputs back', async () => {
    // gpen-lab as it starts on that host: this checkout through tsx, from whatever folder ssh starts in
    const gpenLab = [
      process.execPath,
      '--import',
      path.resolve('node_modules/tsx/dist/loader.mjs'),
      path.resolve('src/cli/index.ts'),
    ];
    const base = cellOf('gpen-ssh', { gpenLab });
    const cell: CellSpec = {
      id: 'gpen-ssh',
      provider: 'cpu',
      route: 'fast',
      precision: 'fp32',
      launcher: base.launcher,
    };
    const out = path.join(tmp, 'lab-gpen');
    const cfg: LabConfig = { ...cfgOf(cell), coldRuns: 1 };
    const r = await runCell(cell, cfg, out, 'no GPU', () => undefined);
    assert.equal(r.runs[0]?.ok, true, JSON.stringify(r.runs));
    assert.match(r.env.launcher, /^ssh .*@127\.0\.0\.1:\d+$/);
    assert.equal(r.env.host, '127.0.0.1');
    // the results carry this host's paths: the input as given, the output copied back into the cell's folder
    assert.equal(r.restore?.input, FACE);
    const gpen = r.restore?.outputs.gpen;
    assert.ok(gpen && gpen.startsWith(path.join(out, 'cells', 'gpen-ssh')), String(gpen));
    assert.ok(existsSync(gpen));
    assert.equal(r.stages.output?.ok, true);
    assert.ok(r.output.psnr !== null && r.output.psnr > 20, `identity model: near its input (${r.output.psnr})`);
    // the job went there with the remote paths
    const job = JSON.parse(readFileSync(path.join(out, 'cells', 'gpen-ssh', 'job-0.json'), 'utf8')) as {
      inputs: string[];
      outDir: string;
    };
    assert.ok(job.inputs[0].startsWith(base.launcher.workDir!), job.inputs[0]);
    assert.equal(job.outDir, path.posix.join(base.launcher.workDir!, 'gpen-ssh', 'out'));
  });

  it('a gpen-lab cell on a host without gpen-lab: its dependency stage says so, with the fix', async () => {
    const base = cellOf('no-gpen', { gpenLab: [path.join(tmp, 'no-such-gpen-lab')] });
    const cell: CellSpec = {
      id: 'no-gpen',
      provider: 'cuda',
      route: 'fast',
      precision: 'fp16',
      launcher: base.launcher,
    };
    const r = await runCell(
      cell,
      { ...cfgOf(cell), coldRuns: 1 },
      path.join(tmp, 'lab-no-gpen'),
      'no GPU',
      () => undefined,
    );
    assert.equal(r.stages.dependencies?.ok, false);
    assert.match(r.stages.dependencies?.reason ?? '', /gpen-lab's doctor did not answer on 127\.0\.0\.1 .*exit 127/);
    assert.match(
      r.doctor?.findings.find((f) => f.id === 'remote-doctor')?.fix ?? '',
      /install gpen-lab on 127\.0\.0\.1/,
    );
  });
});
