// Each closed set is defined once in src/; the lab's JSON schema and the service's format names are tested against it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PROVIDERS } from '../src/runtime/providers.js';
import { ROUTES } from '../src/runtime/routes.js';
import { RUNTIME_BUILDS } from '../src/runtime/builds.js';
import { PRECISIONS } from '../src/onnx/precision.js';
import { GRAPH_OPT_LEVELS } from '../src/runtime/session.js';
import { OFFICIAL_SIZES } from '../src/model/arch.js';
import { OUTPUT_EXTS } from '../src/io/image.js';
import { parseOptions } from '../src/serve/http.js';
import { SCHEMA_FILE } from '../src/lab/config.js';
import { ENGINES, LAUNCHER_TYPES } from '../src/lab/launchers.js';
import { GpenLabError } from '../src/errors.js';

const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8'));

test('the lab schema enumerates the providers, routes and precisions of src/', () => {
  assert.deepEqual(schema.definitions.provider.enum, [...PROVIDERS]);
  assert.deepEqual(schema.definitions.route.enum, [...ROUTES]);
  assert.deepEqual(schema.definitions.precision.enum, [...PRECISIONS]);
});

test('the lab schema enumerates the runtime builds of src/, for a cell and the matrix', () => {
  assert.deepEqual(schema.definitions.runtime.enum, [...RUNTIME_BUILDS]);
  assert.equal(schema.definitions.gpenLabCell.properties.runtime.$ref, '#/definitions/runtime');
  assert.equal(schema.properties.matrix.properties.runtime.items.$ref, '#/definitions/runtime');
});

test('the lab schema enumerates the launcher types and docker engines of src/', () => {
  const types = schema.definitions.launcher.oneOf.map(
    (l: { properties: { type: { const: string } } }) => l.properties.type.const,
  );
  assert.deepEqual(types, [...LAUNCHER_TYPES]);
  assert.deepEqual(schema.definitions.launcher.oneOf[2].properties.engine.enum, [...ENGINES]);
});

test('the lab schema enumerates the graph optimisation levels and the synthetic model sizes of src/', () => {
  assert.deepEqual(schema.definitions.session.properties.graphOptimizationLevel.enum, [...GRAPH_OPT_LEVELS]);
  assert.deepEqual(schema.properties.model.properties.synthetic.enum, [...OFFICIAL_SIZES]);
});

test('the service accepts every output format by name, and names them all when refusing one', () => {
  for (const ext of OUTPUT_EXTS) assert.equal(parseOptions({ format: ext.slice(1) }).ext, ext);
  assert.throws(
    () => parseOptions({ format: 'bmp' }),
    (e: unknown) => {
      assert.ok(e instanceof GpenLabError);
      assert.equal(e.code, 'E_ARGUMENT');
      for (const ext of OUTPUT_EXTS) assert.match(e.message, new RegExp(ext.slice(1)));
      return true;
    },
  );
});
