// The rooms' import rules (eslint.config.js, docs/architecture.md): an import against the data's journey fails lint,
// one along it passes. Files are linted from stdin under a path inside src/, so nothing is written into the tree.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ESLINT = path.resolve('node_modules/eslint/bin/eslint.js');
function lint(file: string, source: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [ESLINT, '--stdin', '--stdin-filename', file], {
    input: source,
    encoding: 'utf8',
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('the rooms import downwards only', () => {
  for (const [file, spec, room] of [
    ['src/runtime/planted.ts', '../model/arch.js', 'model'],
    ['src/io/planted.ts', '../model/registry.js', 'model'],
    ['src/model/planted.ts', '../runtime/session.js', 'runtime'],
    ['src/face/planted.ts', '../cli/restore.js', 'cli'],
    ['src/runtime/capi/planted.ts', '../../face/restore.js', 'face'],
  ] as const) {
    it(`${file} importing ${spec} fails lint, naming the rule`, () => {
      const r = lint(file, `export { x } from '${spec}';\n`);
      assert.equal(r.status, 1, r.out);
      assert.match(r.out, new RegExp(`may not import src/${room}`));
    });
  }

  it('imports along the journey pass: face -> model, runtime -> io, cli -> serve', () => {
    for (const [file, spec] of [
      ['src/face/planted.ts', '../model/arch.js'],
      ['src/runtime/planted.ts', '../io/files.js'],
      ['src/cli/planted.ts', '../serve/server.js'],
    ]) {
      const r = lint(file, `export { x } from '${spec}';\n`);
      assert.equal(r.status, 0, `${file} -> ${spec}: ${r.out}`);
    }
  });

  it('sharp outside src/io and onnxruntime-node outside src/runtime fail lint', () => {
    assert.match(
      lint('src/face/planted.ts', "import sharp from 'sharp';\nexport default sharp;\n").out,
      /Only src\/io imports sharp/,
    );
    assert.match(
      lint('src/io/planted.ts', "import ort from 'onnxruntime-node';\nexport default ort;\n").out,
      /Only src\/runtime imports onnxruntime-node/,
    );
    assert.equal(lint('src/io/planted.ts', "import sharp from 'sharp';\nexport default sharp;\n").status, 0);
  });
});

describe('no import cycles (dependency-cruiser, .dependency-cruiser.cjs)', () => {
  const CRUISE = path.resolve('node_modules/dependency-cruiser/bin/dependency-cruise.mjs');
  const cruise = (dir: string) =>
    spawnSync(process.execPath, [CRUISE, dir, '--config', path.resolve('.dependency-cruiser.cjs')], {
      encoding: 'utf8',
    });

  it('src/ has none', () => {
    const r = cruise('src');
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });

  it('two modules importing each other fail, both named', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gpen-cycle-'));
    try {
      writeFileSync(path.join(dir, 'a.ts'), "import { b } from './b.js';\nexport const a = () => b;\n");
      writeFileSync(path.join(dir, 'b.ts'), "import { a } from './a.js';\nexport const b = () => a;\n");
      const r = cruise(dir);
      assert.notEqual(r.status, 0);
      assert.match(r.stdout, /no-circular/);
      assert.match(r.stdout, /a\.ts/);
      assert.match(r.stdout, /b\.ts/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
