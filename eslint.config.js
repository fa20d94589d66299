import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', {
        paths: [
          { name: 'onnxruntime-node', message: 'Only src/runtime imports onnxruntime-node.' },
          { name: 'sharp', message: 'Only src/io imports sharp.' },
        ],
      }],
    },
  },
  { files: ['src/runtime/**'], rules: { 'no-restricted-imports': 'off' } },
  { files: ['src/io/**'], rules: { 'no-restricted-imports': 'off' } },
  // test helpers make odd images (CMYK, 16-bit, animated) that the project itself never writes
  { files: ['test/helpers/**'], rules: { 'no-restricted-imports': 'off' } },
);
