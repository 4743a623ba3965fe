// registry-auth-proxy GitHub Action: fetch the job's OIDC token for a custom audience and write it
// into Docker's config.json and the containers auth.json. Self-contained: Node built-ins only.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const crypto = require('node:crypto');

function input(name, required) {
  const v = (process.env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] || '').trim();
  if (required && !v) throw new Error(`input "${name}" is required`);
  return v;
}

function writeAtomic(file, content) {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = path.join(path.dirname(file), `.${crypto.randomBytes(6).toString('hex')}.tmp`);
  fs.writeFileSync(tmp, content, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

function merge(file, registry, username, token) {
  let doc = {};
  if (fs.existsSync(file)) {
    const text = fs.readFileSync(file, 'utf8').trim();
    if (text) doc = JSON.parse(text);
  }
  doc.auths = Object.assign({}, doc.auths, { [registry]: { auth: Buffer.from(`${username}:${token}`).toString('base64') } });
  if (doc.credHelpers && doc.credHelpers[registry]) delete doc.credHelpers[registry];
  writeAtomic(file, `${JSON.stringify(doc, null, 2)}\n`);
}

async function requestToken(audience) {
  const url = process.env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const bearer = process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (!url || !bearer) throw new Error('no OIDC token available: give the job `permissions: id-token: write`');
  const u = new URL(url);
  u.searchParams.set('audience', audience);
  const res = await fetch(u, { headers: { authorization: `Bearer ${bearer}`, accept: 'application/json; api-version=2.0' }, signal: AbortSignal.timeout(15000) });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`OIDC token request failed: HTTP ${res.status}`);
  const value = JSON.parse(body).value;
  if (typeof value !== 'string' || !value) throw new Error('OIDC token response has no value');
  return value;
}

async function main() {
  const registry = input('registry', true);
  const audience = input('audience', true);
  const username = input('username', false) || 'github';
  if (!/^[A-Za-z0-9.-]+(:\d+)?$/.test(registry)) throw new Error(`registry "${registry}" is not host[:port]`);
  const token = await requestToken(audience);
  process.stdout.write(`::add-mask::${token}\n`);
  const home = os.homedir();
  const dockerConfig = path.join(process.env.DOCKER_CONFIG || path.join(home, '.docker'), 'config.json');
  const authFile = process.env.REGISTRY_AUTH_FILE || (process.env.XDG_RUNTIME_DIR ? path.join(process.env.XDG_RUNTIME_DIR, 'containers', 'auth.json') : path.join(home, '.config', 'containers', 'auth.json'));
  merge(dockerConfig, registry, username, token);
  merge(authFile, registry, username, token);
  process.stdout.write(`logged in to ${registry} (docker: ${dockerConfig}, podman/skopeo: ${authFile}); the token expires in about 5 minutes\n`);
}

main().catch((err) => {
  process.stdout.write(`::error::${String(err && err.message ? err.message : err).replace(/\r?\n/g, ' ')}\n`);
  process.exitCode = 1;
});
