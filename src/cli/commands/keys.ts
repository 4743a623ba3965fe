import { chmodSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from '../../config/types.js';
import { generatePrivateKeyPem } from '../../token/signing-keys.js';
import { CliExit } from '../exit.js';

export function register(program: Command): void {
  const keys = program.command('keys').description('manage signing keys of issued tokens');
  keys
    .command('generate')
    .description(
      'print a new PEM private key (PKCS#8); with --cert also a self-signed certificate for a registry rootcertbundle',
    )
    .option('--alg <alg>', 'ES256 | RS256 | EdDSA', 'ES256')
    .option('--cert', 'also create a self-signed certificate (tokens then carry x5c)')
    .option('--common-name <cn>', 'certificate subject CN', 'registry-auth-proxy token signer')
    .option('--days <n>', 'certificate validity in days', '3650')
    .option('--out <prefix>', 'write <prefix>.pem (0600) and <prefix>.crt instead of printing')
    .action(async (opts: { alg: string; cert?: boolean; commonName: string; days: string; out?: string }) => {
      if (!SIGNING_ALGORITHMS.includes(opts.alg as SigningAlgorithm))
        throw new CliExit(2, `--alg must be one of ${SIGNING_ALGORITHMS.join(', ')}`);
      const days = Number(opts.days);
      if (!Number.isInteger(days) || days < 1) throw new CliExit(2, '--days must be a positive integer');
      const keyPem = generatePrivateKeyPem(opts.alg as SigningAlgorithm);
      // loaded only when asked for: the X.509 toolkit is heavy and `serve` never needs it
      const certPem = opts.cert
        ? await (await import('../../pki/certificates.js')).selfSignedCertificateForKey(keyPem, opts.commonName, days)
        : undefined;
      if (opts.out) {
        writeFileSync(`${opts.out}.pem`, keyPem, { mode: 0o600 });
        chmodSync(`${opts.out}.pem`, 0o600);
        if (certPem) writeFileSync(`${opts.out}.crt`, certPem);
        process.stderr.write(`wrote ${opts.out}.pem${certPem ? ` and ${opts.out}.crt` : ''}\n`);
      } else {
        process.stdout.write(keyPem + (certPem ?? ''));
      }
    });
}
