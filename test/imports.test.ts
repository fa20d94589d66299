// A cold start's imports: restore's command module loads sharp (it decodes the image) but not onnx-proto (protobufjs),
// yauzl or onnxruntime-node, which load on first use (docs/gpu.md, the cold start). Checked in a child process
// through a module resolve hook, which sees every import the way Node resolves it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The packages among `names` that importing `module` (a path from the repository root) resolves, in a fresh process. */
function packagesImportedBy(module: string, names: string[]): string[] {
  const script = `
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const seen = [];
// the hooks post each URL they resolve, in order: the last import's own URL comes after every one before it
const LAST = 'data:text/javascript,export default 0';
const all = new Promise((resolve) => port1.on('message', (u) => (u === LAST ? resolve() : seen.push(u))));
const hooks = 'export async function initialize(p) { globalThis.port = p; }\\n' +
  'export async function resolve(s, c, next) { const r = await next(s, c); globalThis.port.postMessage(r.url); return r; }';
register('data:text/javascript,' + encodeURIComponent(hooks), { data: port2, transferList: [port2] });
await import('tsx/esm');
await import(${JSON.stringify(path.join(root, module))});
await import(LAST);
await all;
port1.close();
process.stdout.write(JSON.stringify(${JSON.stringify(names)}.filter((m) => seen.some((u) => u.includes('/node_modules/' + m + '/')))));
`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as string[];
}

describe("a cold start's imports", () => {
  it("restore's command loads sharp, and neither onnx-proto, protobufjs, yauzl nor onnxruntime-node until they are used", () => {
    assert.deepEqual(
      packagesImportedBy('src/cli/restore.ts', ['sharp', 'onnx-proto', 'protobufjs', 'yauzl', 'onnxruntime-node']),
      ['sharp'],
    );
  });

  it('the check sees a package imported statically (the regression it guards against)', () => {
    assert.deepEqual(packagesImportedBy('test/helpers/uses-onnx-proto.ts', ['onnx-proto', 'yauzl']), ['onnx-proto']);
  });
});
