#!/usr/bin/env node
import { loadEntry } from './load-entry.js';

const { main } = await loadEntry('registry-auth-proxy', '../dist/cli/main.js');
main(process.argv).then((code) => {
  process.exitCode = code;
});
