/**
 * The functions a mapping expression may call, by bare name. A call may also be qualified with
 * `pg_catalog.` (the parser itself rewrites SQL-syntax forms such as `TRIM(BOTH 'x' FROM s)`,
 * `SUBSTRING(s FROM 1 FOR 2)`, `POSITION('a' IN s)`, `OVERLAY(...)`, `s SIMILAR TO p` and
 * `ts AT TIME ZONE 'UTC'` into `pg_catalog.btrim`, `substring`, `position`, `overlay`,
 * `similar_to_escape` and `timezone`); any other schema is rejected.
 *
 * Every name below is IMMUTABLE in `pg_catalog` for every argument type (checked against
 * `pg_proc.provolatile` of PostgreSQL 15), with these deliberate exceptions:
 * - `concat`, `concat_ws`, `json_build_object`, `jsonb_build_object`, `json_build_array`,
 *   `jsonb_build_array`, `to_json`, `to_jsonb` are STABLE only because they render arbitrary
 *   types through their output functions (a `timestamptz` argument follows the session's
 *   `DateStyle`/`TimeZone`). They have no side effects and are deterministic for a fixed session.
 * - `length(bytea, name)` (an encoding lookup) is STABLE; the other `length` overloads are immutable.
 * - `timezone` is only accepted with two arguments (`x AT TIME ZONE 'UTC'`): the one-argument form
 *   behind PostgreSQL 17's `AT LOCAL` reads the session time zone. `timezone(text, timetz)` is STABLE.
 *
 * Left out on purpose: `now`/`current_timestamp` and every other clock, `random`, sequences
 * (`nextval`...), `to_char`, `to_timestamp(text, text)`, `to_date`, `date_trunc`, `date_part`,
 * `extract` and `age` (STABLE for `timestamptz`), `format`, `array_to_string` (STABLE), every
 * aggregate, window and set-returning function, and everything outside `pg_catalog`.
 *
 * - Text: lower, upper, initcap, btrim, ltrim, rtrim, length, char_length, character_length,
 *   octet_length, bit_length, substr, substring, replace, translate, left, right, lpad, rpad,
 *   split_part, strpos, position, overlay, reverse, repeat, starts_with, ascii, chr, md5, sha256,
 *   sha512, encode, decode, to_hex, regexp_replace, regexp_match, similar_to_escape,
 *   string_to_array, quote_ident, concat, concat_ws
 * - Numbers: abs, round, floor, ceil, ceiling, trunc, mod, sign, sqrt, cbrt, power, pow, exp, ln,
 *   log, log10, div, gcd, lcm, width_bucket, scale, trim_scale
 * - JSON: json_build_object, jsonb_build_object, json_build_array, jsonb_build_array, to_json,
 *   to_jsonb, json_extract_path, json_extract_path_text, jsonb_extract_path,
 *   jsonb_extract_path_text, jsonb_typeof, jsonb_array_length, jsonb_strip_nulls, jsonb_set,
 *   jsonb_object
 * - Arrays: array_length, array_position, array_append, array_prepend, array_cat, cardinality,
 *   array_remove, array_replace, array_upper, array_lower
 * - Dates and times: make_date, make_time, make_timestamp, make_interval, timezone (two arguments)
 * - Nulls: num_nonnulls, num_nulls
 *
 * Amplifying functions take constant size parameters within bounds (see
 * {@link MAPPING_FUNCTION_GROWTH}): `repeat(s, n)` with an integer literal n ≤ 1,000, `lpad`/`rpad`
 * with a literal length ≤ 10,000, `replace`/`regexp_replace`/`array_replace` with a constant
 * replacement, `regexp_match` with a constant pattern, `concat_ws` of several values with a constant
 * separator; the whole result may be at most 10,000 × the source values it reads plus 100,000
 * characters.
 *
 * The allowlist is by name; which object a name binds to is checked against the datasource's
 * catalog at start (`features/expressions`): under Tideway's fixed `search_path`
 * (`pg_catalog, pg_temp`) a name resolves only to built-in `pg_catalog` objects, and anything the
 * expression binds to outside them (a user function, operator, cast function or unsafe type) is
 * refused.
 *
 * `COALESCE`, `NULLIF`, `GREATEST` and `LEAST` are not function calls in the parse tree
 * (`CoalesceExpr`, `A_Expr` NULLIF, `MinMaxExpr`) and are always allowed.
 *
 * @example
 * ```ts
 * MAPPING_FUNCTIONS.has('lower'); // true
 * MAPPING_FUNCTIONS.has('now');   // false
 * ```
 */
export const MAPPING_FUNCTIONS: ReadonlySet<string> = new Set([
  // text
  'lower', 'upper', 'initcap', 'btrim', 'ltrim', 'rtrim', 'length', 'char_length', 'character_length',
  'octet_length', 'bit_length', 'substr', 'substring', 'replace', 'translate', 'left', 'right', 'lpad',
  'rpad', 'split_part', 'strpos', 'position', 'overlay', 'reverse', 'repeat', 'starts_with', 'ascii',
  'chr', 'md5', 'sha256', 'sha512', 'encode', 'decode', 'to_hex', 'regexp_replace', 'regexp_match',
  'similar_to_escape', 'string_to_array', 'quote_ident', 'concat', 'concat_ws',
  // numbers
  'abs', 'round', 'floor', 'ceil', 'ceiling', 'trunc', 'mod', 'sign', 'sqrt', 'cbrt', 'power', 'pow',
  'exp', 'ln', 'log', 'log10', 'div', 'gcd', 'lcm', 'width_bucket', 'scale', 'trim_scale',
  // json
  'json_build_object', 'jsonb_build_object', 'json_build_array', 'jsonb_build_array', 'to_json',
  'to_jsonb', 'json_extract_path', 'json_extract_path_text', 'jsonb_extract_path',
  'jsonb_extract_path_text', 'jsonb_typeof', 'jsonb_array_length', 'jsonb_strip_nulls', 'jsonb_set',
  'jsonb_object',
  // arrays
  'array_length', 'array_position', 'array_append', 'array_prepend', 'array_cat', 'cardinality',
  'array_remove', 'array_replace', 'array_upper', 'array_lower',
  // dates and times
  'make_date', 'make_time', 'make_timestamp', 'make_interval', 'timezone',
  // nulls
  'num_nonnulls', 'num_nulls',
]);

/** The largest constant count `repeat(s, n)` accepts. */
export const MAX_REPEAT_COUNT = 1000;

/** The largest constant length `lpad(s, n)` / `rpad(s, n)` accept, in characters. */
export const MAX_PAD_LENGTH = 10_000;

/**
 * The largest growth an expression may have: its result is at most this many times as long as the
 * source values it reads (plus {@link MAX_RESULT_CONSTANT_CHARS}). Generous for real mappings
 * (`to_jsonb(x)::text` is 12), small enough that no expression turns a row into gigabytes.
 */
export const MAX_RESULT_GROWTH = 10_000;

/** The most characters an expression may produce of its own (literals, padding, fixed-size results). */
export const MAX_RESULT_CONSTANT_CHARS = 100_000;

/** Growth of a cast: a value's text form is at most about twice as long (bytea → hex). */
export const CAST_GROWTH = 2;

/** Characters assumed for a result of fixed size (a length, a hash, a date, a number of nulls). */
export const FIXED_RESULT_CHARS = 160;

/**
 * How each allowlisted function's result size follows from its arguments', for the result-size
 * bound of {@link MAPPING_FUNCTIONS}: `'fixed'` for results of bounded size whatever the input
 * (lengths, positions, hashes, dates), or a factor applied to the sum of the arguments' sizes (JSON
 * escapes a control character as `\u0000`, six characters; `encode(b, 'escape')` writes `\ooo`, four).
 * Functions not listed return at most the sum of their arguments (text and array functions that
 * cut, trim, translate, concatenate or change case; numeric functions, whose results PostgreSQL
 * also caps at 131,072 digits before and 16,383 after the decimal point). Amplifiers whose factor
 * is a parameter are judged by the validator itself: `repeat` (count ≤ {@link MAX_REPEAT_COUNT}),
 * `lpad`/`rpad` (length ≤ {@link MAX_PAD_LENGTH}), `replace`/`regexp_replace`/`array_replace`
 * (constant replacement; factor its length, +1 for a regular expression that matches the empty
 * string), `regexp_match` (constant pattern; factor its groups + 1) and `concat_ws` (constant
 * separator; factor its length + 1). `overlay(s placing t ...)` is additive (at most
 * `length(s) + length(t)`) and needs no constant.
 */
export const MAPPING_FUNCTION_GROWTH: ReadonlyMap<string, number | 'fixed'> = new Map<string, number | 'fixed'>([
  ...['length', 'char_length', 'character_length', 'octet_length', 'bit_length', 'strpos', 'position', 'ascii',
    'chr', 'md5', 'sha256', 'sha512', 'to_hex', 'starts_with', 'jsonb_typeof', 'jsonb_array_length', 'array_length',
    'array_position', 'cardinality', 'array_upper', 'array_lower', 'make_date', 'make_time', 'make_timestamp',
    'make_interval', 'timezone', 'width_bucket', 'scale', 'sign', 'num_nonnulls', 'num_nulls'].map((n) => [n, 'fixed'] as const),
  ...['to_json', 'to_jsonb', 'json_build_object', 'jsonb_build_object', 'json_build_array', 'jsonb_build_array', 'jsonb_object'].map((n) => [n, 6] as const),
  ['encode', 4],
  ['string_to_array', 4],
  ['similar_to_escape', 4],
  ['quote_ident', 2],
]);

/** Functions on {@link MAPPING_FUNCTIONS} that take an exact number of arguments here. */
export const MAPPING_FUNCTION_ARITY: ReadonlyMap<string, number> = new Map([['timezone', 2]]);

/** Aggregates, named so a rejection can say why (the allowlist rejects them anyway). */
export const AGGREGATE_FUNCTIONS: ReadonlySet<string> = new Set([
  'count', 'sum', 'avg', 'min', 'max', 'array_agg', 'string_agg', 'bool_and', 'bool_or', 'every',
  'bit_and', 'bit_or', 'bit_xor', 'json_agg', 'jsonb_agg', 'json_object_agg', 'jsonb_object_agg',
  'json_agg_strict', 'jsonb_agg_strict', 'json_objectagg', 'json_arrayagg', 'xmlagg', 'stddev',
  'stddev_pop', 'stddev_samp', 'variance', 'var_pop', 'var_samp', 'corr', 'covar_pop', 'covar_samp',
  'regr_avgx', 'regr_avgy', 'regr_count', 'regr_intercept', 'regr_r2', 'regr_slope', 'regr_sxx',
  'regr_sxy', 'regr_syy', 'mode', 'percentile_cont', 'percentile_disc', 'range_agg',
  'range_intersect_agg', 'any_value',
]);

/** Window-only functions, named so a rejection can say why. */
export const WINDOW_FUNCTIONS: ReadonlySet<string> = new Set([
  'row_number', 'rank', 'dense_rank', 'percent_rank', 'cume_dist', 'ntile', 'lag', 'lead',
  'first_value', 'last_value', 'nth_value',
]);

/** Set-returning functions, named so a rejection can say why. */
export const SET_RETURNING_FUNCTIONS: ReadonlySet<string> = new Set([
  'unnest', 'generate_series', 'generate_subscripts', 'regexp_matches', 'regexp_split_to_table',
  'string_to_table', 'json_array_elements', 'jsonb_array_elements', 'json_array_elements_text',
  'jsonb_array_elements_text', 'json_each', 'jsonb_each', 'json_each_text', 'jsonb_each_text',
  'json_object_keys', 'jsonb_object_keys', 'jsonb_path_query', 'json_populate_recordset',
  'jsonb_populate_recordset', 'json_to_recordset', 'jsonb_to_recordset', 'pg_ls_dir',
]);

/** Volatile or session-dependent functions people reach for, named so a rejection can say why. */
export const VOLATILE_FUNCTIONS: ReadonlySet<string> = new Set([
  'now', 'clock_timestamp', 'statement_timestamp', 'transaction_timestamp', 'timeofday', 'random',
  'random_normal', 'setseed', 'nextval', 'currval', 'lastval', 'setval', 'gen_random_uuid',
  'uuid_generate_v4', 'uuidv4', 'uuidv7', 'pg_sleep', 'pg_sleep_for', 'pg_sleep_until', 'txid_current',
  'pg_current_xact_id', 'pg_advisory_lock', 'pg_advisory_xact_lock', 'pg_notify', 'set_config',
  'current_setting', 'pg_read_file', 'pg_terminate_backend', 'pg_cancel_backend', 'dblink', 'lo_import',
  'lo_export', 'to_char', 'to_timestamp', 'to_date', 'date_trunc', 'date_part', 'extract', 'age',
  'format', 'array_to_string', 'make_timestamptz',
]);
