/** Where a command writes and reads; `process` streams in `main.ts`. */
export interface Io {
  /** Writes to stdout as is (add the newline yourself). */
  out(text: string): void;
  /** Writes to stderr as is. */
  err(text: string): void;
  /** Whether stdout is a terminal (progress bars) or a pipe/file (one line per update). */
  readonly isTTY: boolean;
  /** The whole of stdin, for `-f -`. */
  readStdin(): Promise<string>;
  /** The stream progress bars draw on. */
  readonly stdout: NodeJS.WritableStream;
}

/** The process's own streams. */
export function processIo(): Io {
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    isTTY: process.stdout.isTTY === true,
    readStdin: async () => {
      const parts: Buffer[] = [];
      for await (const part of process.stdin) parts.push(Buffer.isBuffer(part) ? part : Buffer.from(String(part)));
      return Buffer.concat(parts).toString('utf8');
    },
    stdout: process.stdout,
  };
}
