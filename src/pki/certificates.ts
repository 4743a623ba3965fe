import 'reflect-metadata';
import { webcrypto, X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** Algorithms for certificates we create: keys generated here, signed with ECDSA P-256 unless the key says otherwise. */
const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const RSA_ALG = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 } as const;

export interface CertifiedKey {
  certPem: string;
  keyPem: string;
  cert: X509Certificate;
}

export interface CertificateAuthority extends CertifiedKey {
  issue(options: { commonName: string; dnsNames?: string[]; ipAddresses?: string[]; days?: number }): Promise<CertifiedKey>;
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1');
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  const notBefore = new Date(Date.now() - 5 * 60_000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * 86_400_000) };
}

/** A fresh self-signed CA (tests: issuer fixtures, HTTPS listeners, registry rootcertbundle). */
export async function createCertificateAuthority(commonName = 'registry-auth-proxy test CA', days = 30): Promise<CertificateAuthority> {
  const keys = (await webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
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
  const certPem = caCert.toString('pem') + '\n';
  const keyPem = await exportKeyPem(keys.privateKey);
  return {
    certPem,
    keyPem,
    cert: new X509Certificate(certPem),
    async issue({ commonName: cn, dnsNames = [], ipAddresses = [], days: d = days }) {
      const leafKeys = (await webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${cn}`,
        issuer: caCert.subject,
        ...validity(d),
        signingKey: keys.privateKey,
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
          await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
        ],
      });
      const leafPem = leaf.toString('pem') + '\n';
      return { certPem: leafPem, keyPem: await exportKeyPem(leafKeys.privateKey), cert: new X509Certificate(leafPem) };
    },
  };
}

/**
 * A self-signed certificate for an existing signing key (`keys generate --cert`): Distribution's
 * `rootcertbundle` trusts it, and tokens carry it as `x5c`.
 */
export async function selfSignedCertificateForKey(privateKeyPem: string, commonName: string, days = 3650): Promise<string> {
  const keyObject = createPublicKey(privateKeyPem);
  const { alg, importAlg } = webcryptoAlgFor(keyObject);
  const privateKey = await webcrypto.subtle.importKey(
    'pkcs8',
    (await import('node:crypto')).createPrivateKey(privateKeyPem).export({ type: 'pkcs8', format: 'der' }),
    importAlg,
    true,
    ['sign'],
  );
  const publicKey = await webcrypto.subtle.importKey('spki', keyObject.export({ type: 'spki', format: 'der' }), importAlg, true, ['verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    ...validity(days),
    keys: { privateKey, publicKey },
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
    ],
  });
  return cert.toString('pem') + '\n';
}

function webcryptoAlgFor(key: KeyObject): { alg: Algorithm | EcdsaParams | RsaHashedImportParams; importAlg: EcKeyImportParams | RsaHashedImportParams | Algorithm } {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve !== 'prime256v1' && curve !== 'P-256') throw new Error(`unsupported EC curve ${curve}`);
      return { alg: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams, importAlg: { name: 'ECDSA', namedCurve: 'P-256' } };
    }
    case 'rsa':
      return { alg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as RsaHashedImportParams, importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } };
    case 'ed25519':
      return { alg: { name: 'Ed25519' }, importAlg: { name: 'Ed25519' } };
    default:
      throw new Error(`unsupported key type ${key.asymmetricKeyType}`);
  }
}

export { RSA_ALG };
