#!/usr/bin/env node
import { loadEntry } from './load-entry.js';

const { dockerCredentialHelperMain } = await loadEntry(
  'docker-credential-registry-auth-proxy',
  '../dist/clients/docker-credential-helper.js',
);
dockerCredentialHelperMain(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
