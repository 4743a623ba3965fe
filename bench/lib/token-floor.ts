import { freePort } from '../../test/support/net.js';
import { startNodeServer } from './pipe.js';

interface TokenFloor {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * The floor for /token (issue 19): per request one HTTP exchange through a bare node:http process,
 * one ES256 identity-token verification and one ES256 token signature with node:crypto — what an
 * issuance cannot do without — and nothing else (no claims checks, no policy, no logging). Its CPU
 * per request is what the proxy's /token CPU is compared with, in the same run.
 */
export async function startTokenFloor(jwks: string): Promise<TokenFloor> {
  const port = await freePort();
  const source = `
const { createServer } = require('node:http');
const { createPublicKey, generateKeyPairSync, sign, verify } = require('node:crypto');
const issuerKey = createPublicKey({ key: JSON.parse(${JSON.stringify(jwks)}).keys[0], format: 'jwk' });
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const b64 = (v) => Buffer.from(v).toString('base64url');
const header = b64(JSON.stringify({ alg: 'ES256', typ: 'JWT' }));
createServer((req, res) => {
  const basic = Buffer.from((req.headers.authorization || '').slice(6), 'base64').toString();
  const jwt = basic.slice(basic.indexOf(':') + 1);
  const [h, p, s] = jwt.split('.');
  if (s === undefined) return res.writeHead(401).end();
  const ok = verify('sha256', Buffer.from(h + '.' + p), { key: issuerKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
  if (!ok) return res.writeHead(401).end();
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  const body = header + '.' + b64(JSON.stringify({ sub: claims.sub, exp: Math.floor(Date.now() / 1000) + 300 }));
  const token = body + '.' + sign('sha256', Buffer.from(body), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token }));
}).listen(${port}, '127.0.0.1');
`;
  return startNodeServer(source, port);
}
