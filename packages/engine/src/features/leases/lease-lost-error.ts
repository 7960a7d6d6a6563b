/**
 * The lease of a unit of leased work (a backfill chunk, a verification range) was lost while the
 * unit ran: it ran out, or another worker holds it now. Thrown by the chunk copier after rolling
 * the copy back when the pre-commit lease check fails, and by {@link LeasedWork.run} when the
 * heartbeat gave the lease up. Nothing the unit did was committed after the loss; the unit is
 * redone by whoever leases it next.
 */
export class LeaseLostError extends Error {
  constructor(message = 'the lease was lost before the work committed; it was rolled back', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LeaseLostError';
  }
}
