#!/usr/bin/env node
// `tideway`: runs the TypeScript entry point through tsx (no build step).
import { register } from 'tsx/esm/api';

register();
await import(new URL('../src/main.ts', import.meta.url).href);
