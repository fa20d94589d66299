// The doctor's own parts: container detection from fake marks, the try-load child (cpu runs, cuda fails with the
// real reason, a crash and a hang are results), and the whole report on this machine (no GPU): the no-GPU decision
// first, cpu runs, every GPU provider unavailable with its reason (fixes in the JSON), exit codes and JSON schema.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { detectContainer } from '../src/doctor/system.js';
import { probeProvider } from '../src/doctor/probe.js';

let tmp: string;
before(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-doctor-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('container detection', () => {
  it('reads docker, podman, kubernetes and cgroup marks, and WSL', () => {
    const none = path.join(tmp, 'none');
    const f = (name: string, body: string) => {
      const p = path.join(tmp, name);
      writeFileSync(p, body);
      return p;
    };
    const base = { dockerenv: none, containerenv: none, cgroup: none, procVersion: none };
    assert.deepEqual(detectContainer({ ...base }, {}), { inContainer: false, kind: null, evidence: null });
    assert.equal(detectContainer({ ...base, dockerenv: f('dockerenv', '') }, {}).kind, 'docker');
    assert.equal(detectContainer({ ...base, containerenv: f('containerenv', '') }, {}).kind, 'podman');
    assert.equal(detectContainer({ ...base }, { KUBERNETES_SERVICE_HOST: '10.0.0.1' }).kind, 'kubernetes');
    assert.equal(
      detectContainer({ ...base, cgroup: f('cgroup', '0::/kubepods/besteffort/pod1/abc\n') }, {}).kind,
      'kubernetes',
    );
    const wsl = detectContainer(
      { ...base, procVersion: f('version', 'Linux version 5.15.90.1-microsoft-standard-WSL2') },
      {},
    );
    assert.deepEqual([wsl.inContainer, wsl.kind], [false, 'wsl']);
  });
});

describe('try-load in a child process', () => {
  it('cpu creates a session and runs, and says it ran on cpu', async () => {
    const r = await probeProvider('cpu');
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual([r.stage, r.ran, r.error], ['done', ['cpu'], null]);
  });

  it("cuda without its provider files fails at session creation with ONNX Runtime's own words", async () => {
    const r = await probeProvider('cuda');
    assert.equal(r.ok, false);
    assert.equal(r.stage, 'create-session');
    assert.match(`${r.error}\n${r.stderrTail}`, /libonnxruntime_providers_(shared|cuda)\.so/);
  });

  it('a child that cannot start the runtime, or hangs, is a result with its stage, not an exception', async () => {
    // an unknown provider fails in the child's own validation
    const bad = await probeProvider('dml');
    assert.equal(bad.ok, false);
    assert.match(bad.error ?? '', /dml/);
    const slow = await probeProvider('cpu', { timeoutMs: 50 });
    assert.equal(slow.ok, false);
    assert.match(slow.error ?? '', /timed out after 0\.05 s/);
  });
});

describe('doctor on this machine (no GPU)', () => {
  const doctor = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'doctor', ...args], {
      encoding: 'utf8',
      timeout: 300_000,
    });

  it('cpu runs, cuda, tensorrt and webgpu do not, each with its reason and a fix in the JSON; auto -> cpu decides: exit 0', () => {
    const r = doctor('--json');
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as {
      schema: string;
      ok: boolean;
      gpu: { source: string };
      providers: {
        provider: string;
        verdict: string;
        findings: { id: string; fix: string | null }[];
        probe: { ok: boolean };
      }[];
      decision: {
        asked: string;
        auto: string;
        works: boolean;
        why: string;
        noGpu: boolean;
        exitCode: number;
        excused: string[];
        failing: string[];
        rootCause: { id: string; provider: string | null; consequences: { provider: string; findings: string[] }[] };
      };
    };
    assert.equal(rep.schema, 'gpen-lab.doctor/1');
    // `ok` keeps its meaning (every provider runs); the exit follows the decision
    assert.equal(rep.ok, false);
    assert.equal(rep.gpu.source, 'none');
    const by = new Map(rep.providers.map((p) => [p.provider, p]));
    assert.equal(by.get('cpu')!.verdict, 'ok');
    for (const p of ['cuda', 'tensorrt', 'webgpu']) {
      const pr = by.get(p)!;
      assert.equal(pr.verdict, 'fail', p);
      assert.ok(
        pr.findings.length > 0 && pr.findings.every((f) => f.fix),
        `${p}: findings with fixes: ${JSON.stringify(pr.findings)}`,
      );
    }
    assert.ok(
      by.get('cuda')!.findings.some((f) => f.id === 'provider-files-missing' && f.fix === 'gpen-lab setup cuda'),
    );
    assert.ok(by.get('cuda')!.findings.some((f) => f.id === 'no-gpu'));
    const d = rep.decision;
    assert.deepEqual([d.asked, d.auto, d.works, d.noGpu, d.exitCode, d.failing], ['auto', 'cpu', true, true, 0, []]);
    assert.deepEqual(d.excused, ['cuda', 'tensorrt', 'webgpu']);
    assert.deepEqual(
      [d.rootCause.id, d.rootCause.provider, d.rootCause.consequences.map((c) => c.provider)],
      ['no-gpu', null, ['cuda', 'tensorrt', 'webgpu']],
    );
    assert.match(
      d.why,
      /^provider auto -> cpu \(fast route: stock binding; fp32; batch 4; detector on cpu; single\); cuda skipped: no NVIDIA GPU or driver is visible; webgpu skipped: no hardware adapter \(.+\)$/,
    );
    const only = doctor('--provider', 'cpu');
    assert.equal(only.status, 0, only.stderr);
    assert.match(only.stdout, /Provider cpu: runs/);
    assert.match(only.stdout, /GPU and driver \(source: none\)/);
  });

  it('prints the no-GPU decision first, no install line before it, the CUDA libraries folded under it', () => {
    const r = doctor();
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.deepEqual(lines.slice(0, 2), [
      'Decision',
      '    warn no GPU: no NVIDIA GPU or driver is visible, so cuda and tensorrt cannot run here and nothing to install for CUDA can help',
    ]);
    assert.match(
      lines.find((l) => l.includes('auto chooses'))!,
      /^ {4}ok {3}auto chooses cpu, which runs here \(try-load [\d.]+ s\): provider auto -> cpu \(fast route: stock binding; fp32; batch 4; detector on cpu; single\); cuda skipped: no NVIDIA GPU/,
    );
    assert.ok(lines.indexOf('System') > 2);
    const cuda = lines.findIndex((l) => l.startsWith('Provider cuda:'));
    assert.match(lines[cuda], /^Provider cuda: does NOT run: no GPU, see Decision/);
    assert.match(
      lines[cuda + 1],
      /^ {4}folded under no GPU: .*libraries it needs are missing \(.*libcublasLt\.so\.13.*8 cuDNN libraries/,
    );
    assert.ok(lines[cuda + 2].startsWith('Provider tensorrt:'), 'one line under the cause');
    assert.doesNotMatch(r.stdout, /fix:|^\s+FAIL lib|pip install|setup cuda|\(loadable\)/m);
    assert.match(r.stdout, /cuda \(provider files absent\)/);
  });

  it('--provider cuda exits 3 with the same cause first', () => {
    const r = doctor('--provider', 'cuda');
    assert.equal(r.status, 3, r.stderr);
    const lines = r.stdout.split('\n');
    assert.match(
      lines[1],
      /^ {4}FAIL no GPU: no NVIDIA GPU or driver is visible, so cuda cannot run here and nothing to install for CUDA can help$/,
    );
    assert.ok(lines.includes('    exit 3: cuda was asked for and does not run'), r.stdout);
    const json = doctor('--provider', 'cuda', '--no-probe', '--json');
    assert.equal(json.status, 3, json.stderr);
    const d = (
      JSON.parse(json.stdout) as {
        decision: { asked: string[]; exitCode: number; failing: string[]; rootCause: { id: string } };
      }
    ).decision;
    assert.deepEqual([d.asked, d.exitCode, d.failing, d.rootCause.id], [['cuda'], 3, ['cuda'], 'no-gpu']);
  });
});
