// The doctor's own parts: container detection from fake marks, the try-load child (cpu runs, cuda fails with the
// real reason, a crash and a hang are results), and the whole report on this machine (no GPU): cpu runs, every GPU
// provider is reported unavailable with its reason and fix, exit code and JSON schema.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { detectContainer } from '../src/doctor/system.js';
import { probeProvider } from '../src/doctor/probe.js';

let tmp: string;
before(() => { tmp = mkdtempSync(path.join(os.tmpdir(), 'gpen-doctor-')); });
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('container detection', () => {
  it('reads docker, podman, kubernetes and cgroup marks, and WSL', () => {
    const none = path.join(tmp, 'none');
    const f = (name: string, body: string) => { const p = path.join(tmp, name); writeFileSync(p, body); return p; };
    const base = { dockerenv: none, containerenv: none, cgroup: none, procVersion: none };
    assert.deepEqual(detectContainer({ ...base }, {}), { inContainer: false, kind: null, evidence: null });
    assert.equal(detectContainer({ ...base, dockerenv: f('dockerenv', '') }, {}).kind, 'docker');
    assert.equal(detectContainer({ ...base, containerenv: f('containerenv', '') }, {}).kind, 'podman');
    assert.equal(detectContainer({ ...base }, { KUBERNETES_SERVICE_HOST: '10.0.0.1' }).kind, 'kubernetes');
    assert.equal(detectContainer({ ...base, cgroup: f('cgroup', '0::/kubepods/besteffort/pod1/abc\n') }, {}).kind, 'kubernetes');
    const wsl = detectContainer({ ...base, procVersion: f('version', 'Linux version 5.15.90.1-microsoft-standard-WSL2') }, {});
    assert.deepEqual([wsl.inContainer, wsl.kind], [false, 'wsl']);
  });
});

describe('try-load in a child process', () => {
  it('cpu creates a session and runs, and says it ran on cpu', async () => {
    const r = await probeProvider('cpu');
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual([r.stage, r.ran, r.error], ['done', ['cpu'], null]);
  });

  it('cuda without its provider files fails at session creation with ONNX Runtime\'s own words', async () => {
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
  it('cpu runs, cuda, tensorrt and webgpu do not, each with its reason and a fix; exit 3; JSON schema', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'doctor', '--json'], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 3, r.stderr);
    const rep = JSON.parse(r.stdout) as { schema: string; ok: boolean; gpu: { source: string }; providers: { provider: string; verdict: string; findings: { id: string; fix: string | null }[]; probe: { ok: boolean } }[] };
    assert.equal(rep.schema, 'gpen-lab.doctor/1');
    assert.equal(rep.ok, false);
    assert.equal(rep.gpu.source, 'none');
    const by = new Map(rep.providers.map((p) => [p.provider, p]));
    assert.equal(by.get('cpu')!.verdict, 'ok');
    for (const p of ['cuda', 'tensorrt', 'webgpu']) {
      const pr = by.get(p)!;
      assert.equal(pr.verdict, 'fail', p);
      assert.ok(pr.findings.length > 0 && pr.findings.every((f) => f.fix), `${p}: findings with fixes: ${JSON.stringify(pr.findings)}`);
    }
    assert.ok(by.get('cuda')!.findings.some((f) => f.id === 'provider-files-missing' && f.fix === 'gpen-lab setup cuda'));
    assert.ok(by.get('cuda')!.findings.some((f) => f.id === 'no-gpu'));
    const only = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'doctor', '--provider', 'cpu'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(only.status, 0, only.stderr);
    assert.match(only.stdout, /Provider cpu: runs/);
    assert.match(only.stdout, /GPU and driver \(source: none\)/);
  });
});
