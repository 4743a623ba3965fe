#!/usr/bin/env node
import { loadEntry } from './load-entry.js';

// A serving command is re-executed with the streaming settings first (src/cli/launch.ts).
const { relaunchToServe } = await loadEntry('registry-auth-proxy', '../dist/cli/launch.js');
if (!relaunchToServe()) {
  const { main } = await loadEntry('registry-auth-proxy', '../dist/cli/main.js');
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
