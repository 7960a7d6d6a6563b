/** Thrown by the chunk copier, after rolling the copy back, when the chunk's lease was lost before COMMIT. */
export class LeaseLostError extends Error {
  constructor() {
    super('the chunk lease was lost before the copy committed; the copy was rolled back');
    this.name = 'LeaseLostError';
  }
}
