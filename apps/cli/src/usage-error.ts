/** A command line the CLI cannot act on (bad file, bad value); exits with code 2 like commander's own errors. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
