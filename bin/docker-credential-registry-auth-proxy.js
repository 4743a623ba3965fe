#!/usr/bin/env node
import { dockerCredentialHelperMain } from '../dist/clients/docker-credential-helper.js';

dockerCredentialHelperMain(process.argv.slice(2)).then((code) => { process.exitCode = code; });
