import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance } from 'fastify';

// ajv-formats ships CommonJS with a default export; under NodeNext it arrives wrapped.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/**
 * Two validators instead of Fastify's one: bodies are validated strictly (no type coercion, unknown
 * fields rejected, never silently removed), while params and querystrings coerce strings to numbers
 * as they must. Every error is reported (`allErrors`), so a 400 names every offending field.
 */
export function installValidators(app: FastifyInstance): void {
  const common = { allErrors: true, strict: false, removeAdditional: false, useDefaults: false } as const;
  const body = addFormats(new Ajv({ ...common, coerceTypes: false }));
  const other = addFormats(new Ajv({ ...common, coerceTypes: 'array' }));
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? body : other).compile(schema));
}
