// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '.turbo/**', 'demo-report/**', '.tideway/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', crypto: 'readonly' } },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // `.only` must never reach CI.
      'no-restricted-properties': [
        'error',
        { object: 'describe', property: 'only', message: 'remove .only' },
        { object: 'it', property: 'only', message: 'remove .only' },
        { object: 'test', property: 'only', message: 'remove .only' },
      ],
    },
  },
  {
    // The domain core stays pure: no I/O libraries.
    files: ['packages/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['pg', 'pg-*', 'kysely', 'kysely/*', 'bullmq', 'ioredis', 'fastify', 'fastify-*', '@fastify/*', 'unleash-client', 'unleash-server', '@tideway/db', '@tideway/engine', 'node:fs', 'node:net', 'node:http', 'node:child_process'], message: 'packages/core is pure domain code: no I/O imports' },
          ],
        },
      ],
    },
  },
  {
    // The SDK depends on core types only.
    files: ['packages/sdk/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['@tideway/engine', '@tideway/db', 'kysely', 'pg', 'bullmq'], message: 'the SDK depends on @tideway/core only' }] }],
    },
  },
);
