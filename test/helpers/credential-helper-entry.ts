import { dockerCredentialHelperMain } from '../../src/clients/docker-credential-helper.js';

process.exitCode = await dockerCredentialHelperMain(process.argv.slice(2));
