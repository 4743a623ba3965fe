import 'reflect-metadata';
import { webcrypto, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** A random positive 128-bit serial number (the top bit cleared so DER keeps it positive). */
function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString('hex')
    .replace(/^[89a-f]/, '1');
}

/** Valid from five minutes ago, so a verifier whose clock runs slightly behind accepts it at once. */
function validity(days: number): { notBefore: Date; notAfter: Date } {
  const notBefore = new Date(Date.now() - 5 * 60_000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * 86_400_000) };
}

/**
 * A self-signed certificate for an existing signing key (`keys generate --cert`): Distribution's
 * `rootcertbundle` trusts it, and tokens carry it as `x5c`.
 */
export async function selfSignedCertificateForKey(
  privateKeyPem: string,
  commonName: string,
  days = 3650,
): Promise<string> {
  const keyObject = createPublicKey(privateKeyPem);
  const { alg, importAlg } = webcryptoAlgFor(keyObject);
  const pkcs8 = createPrivateKey(privateKeyPem).export({ type: 'pkcs8', format: 'der' });
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, importAlg, true, ['sign']);
  const publicKey = await webcrypto.subtle.importKey(
    'spki',
    keyObject.export({ type: 'spki', format: 'der' }),
    importAlg,
    true,
    ['verify'],
  );
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

/** The WebCrypto algorithms for our signing keys' types (the ones `keys generate` makes). */
function webcryptoAlgFor(key: KeyObject): {
  alg: Algorithm | EcdsaParams | RsaHashedImportParams;
  importAlg: EcKeyImportParams | RsaHashedImportParams | Algorithm;
} {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve !== 'prime256v1' && curve !== 'P-256') throw new Error(`unsupported EC curve ${curve}`);
      return {
        alg: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
        importAlg: { name: 'ECDSA', namedCurve: 'P-256' },
      };
    }
    case 'rsa':
      return {
        alg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as RsaHashedImportParams,
        importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      };
    case 'ed25519':
      return { alg: { name: 'Ed25519' }, importAlg: { name: 'Ed25519' } };
    default:
      throw new Error(`unsupported key type ${key.asymmetricKeyType}`);
  }
}
