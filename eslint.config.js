import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The rooms of src/ and the rooms each may import (docs/architecture.md): imports point down the data's journey.
const ROOMS = {
  cli: ['serve', 'queue', 'lab', 'doctor', 'face', 'model', 'runtime', 'onnx', 'metrics', 'io'],
  queue: ['lab', 'doctor', 'face', 'model', 'runtime', 'onnx', 'metrics', 'io'],
  serve: ['lab', 'doctor', 'face', 'model', 'runtime', 'onnx', 'metrics', 'io'],
  lab: ['doctor', 'face', 'model', 'runtime', 'onnx', 'metrics', 'io'],
  doctor: ['runtime', 'onnx', 'metrics', 'io'],
  face: ['model', 'runtime', 'onnx', 'metrics', 'io'],
  model: ['onnx', 'io'],
  runtime: ['onnx', 'io'],
  metrics: ['io'],
  onnx: ['io'],
  io: [],
};
const PACKAGES = { 'onnxruntime-node': 'runtime', sharp: 'io', bullmq: 'queue', ioredis: 'queue' };

function importRules(room) {
  const forbidden = Object.keys(ROOMS).filter((r) => r !== room && !ROOMS[room].includes(r));
  return {
    'no-restricted-imports': [
      'error',
      {
        paths: Object.entries(PACKAGES)
          .filter(([, home]) => home !== room)
          .map(([name, home]) => ({ name, message: `Only src/${home} imports ${name}.` })),
        patterns: [
          ...forbidden.map((r) => ({
            regex: `^(\\.\\./)+${r}/`,
            message: `src/${room} may not import src/${r}: imports point down the data's journey (docs/architecture.md).`,
          })),
          {
            regex: '^(\\.\\./)+index\\.js$',
            message: 'src/index.ts is the library entry point; import the module itself.',
          },
        ],
      },
    ],
  };
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': [
        'error',
        {
          paths: Object.entries(PACKAGES).map(([name, home]) => ({
            name,
            message: `Only src/${home} imports ${name}.`,
          })),
        },
      ],
    },
  },
  ...Object.keys(ROOMS).map((room) => ({ files: [`src/${room}/**`], rules: importRules(room) })),
  // test helpers make odd images (CMYK, 16-bit, animated) that the project itself never writes
  { files: ['test/helpers/**'], rules: { 'no-restricted-imports': 'off' } },
);
