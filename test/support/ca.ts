import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/**
 * A throw-away certificate authority for tests: HTTPS issuers and listeners, the fake Kubernetes
 * API. Test-only, so it lives here rather than in `src/` (which ships in `dist/`).
 */
const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

interface CertifiedKey {
  certPem: string;
  keyPem: string;
  cert: X509Certificate;
}

interface CertificateAuthority extends CertifiedKey {
  issue(options: {
    commonName: string;
    dnsNames?: string[];
    ipAddresses?: string[];
    days?: number;
  }): Promise<CertifiedKey>;
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString('hex')
    .replace(/^[89a-f]/, '1');
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
}

/** Valid from five minutes ago, so a slightly slow clock elsewhere still accepts it. */
function validity(days: number): { notBefore: Date; notAfter: Date } {
  const notBefore = new Date(Date.now() - 5 * 60_000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * 86_400_000) };
}

function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

async function createRoot(commonName: string, days: number, keys: CryptoKeyPair): Promise<x509.X509Certificate> {
  return x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    ...validity(days),
    keys,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
}

/** A server-and-client leaf for DNS names and IP addresses, signed by the root. */
async function issueLeaf(
  root: x509.X509Certificate,
  rootKeys: CryptoKeyPair,
  cn: string,
  dnsNames: string[],
  ipAddresses: string[],
  days: number,
): Promise<CertifiedKey> {
  const leafKeys = await newKeys();
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${cn}`,
    issuer: root.subject,
    ...validity(days),
    signingKey: rootKeys.privateKey,
    publicKey: leafKeys.publicKey,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const certPem = leaf.toString('pem') + '\n';
  return { certPem, keyPem: await exportKeyPem(leafKeys.privateKey), cert: new X509Certificate(certPem) };
}

/** A fresh self-signed CA (ECDSA P-256) that issues leaves for `localhost`-style test servers. */
export async function createCertificateAuthority(
  commonName = 'registry-auth-proxy test CA',
  days = 30,
): Promise<CertificateAuthority> {
  const keys = await newKeys();
  const root = await createRoot(commonName, days, keys);
  const certPem = root.toString('pem') + '\n';
  return {
    certPem,
    keyPem: await exportKeyPem(keys.privateKey),
    cert: new X509Certificate(certPem),
    issue: ({ commonName: cn, dnsNames = [], ipAddresses = [], days: d = days }) =>
      issueLeaf(root, keys, cn, dnsNames, ipAddresses, d),
  };
}
