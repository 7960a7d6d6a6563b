/**
 * The exit codes of `tideway` (see README.md):
 * - `ok` 0: done;
 * - `apiError` 1: the API answered with an error, or could not be reached;
 * - `usage` 2: the command line is wrong (unknown option, missing argument, unreadable file…);
 * - `differences` 3: `tideway verify` found differences between source and target;
 * - `interrupted` 130: `tideway watch` stopped by SIGINT/SIGTERM (the shell's 128 + SIGINT).
 */
export const EXIT_CODES = { ok: 0, apiError: 1, usage: 2, differences: 3, interrupted: 130 } as const;
export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];
