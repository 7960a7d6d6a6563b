import { sharedConfig } from '../../vitest.shared.js';

// Unleash boots on first use (install included): a long hook timeout.
export default sharedConfig({ hookTimeout: 180_000 });
