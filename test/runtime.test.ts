// The runtime layer: the closed provider set, coded errors for providers that cannot run, and placement records.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GpenLabError } from '../src/errors.js';
import { synthesizeIdentity } from '../src/model/registry.js';
import {
  PROVIDERS,
  missingProviderFiles,
  nvidiaDeviceVisible,
  ortBinDir,
  parseProvider,
} from '../src/runtime/providers.js';
import { ModelSession, knownProviders } from '../src/runtime/session.js';

describe('providers', () => {
  it('is one closed set and rejects anything else with E_PROVIDER_UNKNOWN', () => {
    assert.deepEqual([...PROVIDERS], ['cpu', 'cuda', 'tensorrt', 'webgpu']);
    for (const p of PROVIDERS) assert.equal(parseProvider(p), p);
    for (const bad of ['gpu', 'CUDA', '', 3]) {
      assert.throws(
        () => parseProvider(bad),
        (e: unknown) =>
          e instanceof GpenLabError && e.code === 'E_PROVIDER_UNKNOWN' && e.fix.includes('cpu, cuda, tensorrt, webgpu'),
      );
    }
  });

  it('lists what the installed binary knows (cpu always, bundled)', () => {
    const known = knownProviders();
    assert.deepEqual(
      known.find((k) => k.provider === 'cpu'),
      { provider: 'cpu', bundled: true },
    );
  });

  it('records the provider asked for and the one that ran each node', async () => {
    const s = await ModelSession.create(synthesizeIdentity(64), { provider: 'cpu' });
    assert.equal(s.asked, 'cpu');
    assert.equal(s.placement, null);
    await s.run(new Float32Array(3 * 64 * 64), [1, 3, 64, 64]);
    const { sessionMs, ...placement } = s.placement!;
    assert.deepEqual(placement, { nodesByProvider: { cpu: 1 }, ran: ['cpu'], mismatch: false });
    // ONNX Runtime's own timing of the session's creation comes with it
    assert.ok(sessionMs && (sessionMs.session_initialization ?? 0) > 0, JSON.stringify(sessionMs));
    await s.release();
  });

  for (const p of ['cuda', 'tensorrt'] as const) {
    it(`asking for ${p} where its libraries are missing is a coded error naming the file, never a silent CPU run`, async (t) => {
      const missing = missingProviderFiles(p);
      if (missing.length === 0) {
        t.diagnostic(
          `${p} provider files are installed here: checking that a session either runs on ${p} or fails with a coded error`,
        );
      }
      try {
        const s = await ModelSession.create(synthesizeIdentity(64), { provider: p, label: 'identity-64' });
        await s.run(new Float32Array(3 * 64 * 64), [1, 3, 64, 64]);
        assert.ok(s.placement?.ran.includes(p), `asked for ${p}, ran ${s.placement?.ran}`);
        await s.release();
      } catch (e) {
        assert.ok(e instanceof GpenLabError, String(e));
        assert.equal(e.code, 'E_PROVIDER_UNAVAILABLE');
        assert.ok(e.message.includes(p));
        for (const f of missing) assert.ok(e.message.includes(f), `${f} not named in: ${e.message}`);
        // the fix follows the cause: no NVIDIA device, nothing to install; else the command that installs the provider
        if (nvidiaDeviceVisible())
          assert.ok(e.fix.includes('gpen-lab setup cuda') && e.fix.includes(ortBinDir()), e.fix);
        else
          assert.ok(
            /^No NVIDIA GPU or driver is visible .*cannot help.*--provider cpu\.$/.test(e.fix) &&
              !e.fix.includes('setup cuda'),
            e.fix,
          );
        assert.ok(typeof e.details.ort === 'string' && e.details.ort.length > 0, 'what ONNX Runtime said is kept');
      }
    });
  }
});
