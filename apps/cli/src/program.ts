import { Command, CommanderError } from 'commander';
import { ApiError } from './api-error.js';
import { registerCleanupCommand } from './commands/cleanups.js';
import { registerDivergenceCommand } from './commands/divergences.js';
import { registerMigrationCommands } from './commands/migrations.js';
import { registerTokenCommands } from './commands/tokens.js';
import { registerVerificationsCommand, registerVerifyCommand } from './commands/verify.js';
import { registerWatchCommand } from './commands/watch.js';
import { addGlobalOptions, type CliRuntime } from './context.js';
import { EXIT_CODES, type ExitCode } from './exit-codes.js';
import type { Io } from './io.js';
import { UsageError } from './usage-error.js';

/**
 * The `tideway` program. Commander's own errors (unknown option, missing argument…) do not exit
 * the process: `exitOverride` turns them into a `CommanderError` that {@link run} maps to exit 2.
 */
export function buildProgram(cli: CliRuntime): Command {
  const program = new Command('tideway')
    .description('Operate Tideway migrations through the control plane REST API')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeOut: (s) => cli.io.out(s), writeErr: (s) => cli.io.err(s) })
    .showSuggestionAfterError();
  addGlobalOptions(program, true);
  registerMigrationCommands(program, cli);
  registerWatchCommand(program, cli);
  registerVerifyCommand(program, cli);
  registerVerificationsCommand(program, cli);
  registerDivergenceCommand(program, cli);
  registerCleanupCommand(program, cli);
  registerTokenCommands(program, cli);
  return program;
}

/** `error CODE: message`, the details as indented JSON, and the allowed actions of an invalid transition. */
export function renderApiError(error: ApiError): string {
  let out = `error ${error.code}: ${error.message}\n`;
  const allowed = error.details['allowed'];
  if (error.code === 'INVALID_TRANSITION' && Array.isArray(allowed)) {
    out += `allowed actions: ${allowed.length ? allowed.join(', ') : 'none'}\n`;
  }
  if (Object.keys(error.details).length > 0) out += `${JSON.stringify(error.details, null, 2).replace(/^/gm, '  ')}\n`;
  return out;
}

/**
 * Runs the CLI on `argv` (user arguments only, without `node` and the script) and returns the
 * exit code: 0 ok, 1 API error, 2 usage error, 3 differences found by `verify`.
 */
export async function run(argv: readonly string[], io: Io): Promise<ExitCode> {
  const cli: CliRuntime = { io, exitCode: EXIT_CODES.ok };
  const program = buildProgram(cli);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return cli.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version end with exit code 0; every other commander error is a usage error.
      return error.exitCode === 0 ? EXIT_CODES.ok : EXIT_CODES.usage;
    }
    if (error instanceof UsageError) {
      io.err(`error: ${error.message}\n`);
      return EXIT_CODES.usage;
    }
    if (error instanceof ApiError) {
      io.err(renderApiError(error));
      return EXIT_CODES.apiError;
    }
    io.err(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT_CODES.apiError;
  }
}
