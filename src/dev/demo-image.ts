import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';

/** The image `--dev` puts in its embedded registry, so the banner's pull and push work offline. */
const DEMO_REPOSITORY = 'demo/hello';
const DEMO_TAG = 'latest';

const MANIFEST_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';
const CONFIG_TYPE = 'application/vnd.docker.container.image.v1+json';
const LAYER_TYPE = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

interface Blob {
  digest: string;
  data: Buffer;
}

interface DemoImage {
  blobs: Blob[];
  manifest: Buffer;
  manifestType: string;
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Node's architecture as an image config names it (GOARCH), so Docker pulls without a platform warning. */
export function goArch(arch: string = process.arch): string {
  return ({ x64: 'amd64', ia32: '386', ppc64: 'ppc64le' } as Record<string, string>)[arch] ?? arch;
}

async function tarOf(name: string, content: string): Promise<Buffer> {
  const p = pack();
  p.entry({ name, mode: 0o644, mtime: new Date(0), uname: 'root', gname: 'root' }, content);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

/**
 * A one-file image (Docker schema 2, which every client here reads): `/hello.txt` and nothing to
 * run. Deterministic, so each start finds it already stored.
 */
export async function buildDemoImage(arch = goArch()): Promise<DemoImage> {
  const tar = await tarOf(
    'hello.txt',
    'Hello from registry-auth-proxy --dev.\nThis image holds only this file: pull it, tag it, push it.\n',
  );
  const layer = gzipSync(tar, { level: 9 });
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      created: '1970-01-01T00:00:00Z',
      config: { Labels: { 'org.opencontainers.image.description': 'registry-auth-proxy --dev demo image' } },
      rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: 'registry-auth-proxy --dev' }],
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: CONFIG_TYPE, size: config.length, digest: sha256(config) },
      layers: [{ mediaType: LAYER_TYPE, size: layer.length, digest: sha256(layer) }],
    }),
  );
  return {
    blobs: [
      { digest: sha256(config), data: config },
      { digest: sha256(layer), data: layer },
    ],
    manifest,
    manifestType: MANIFEST_TYPE,
  };
}

/**
 * Pushes the demo image straight to the embedded registry (no proxy: it is ours, on loopback, and
 * `authorization` is the proxy's own credential for it) unless the tag already exists. Returns the
 * reference pushed or found.
 */
export async function seedDemoImage(registryURL: string, authorization: string): Promise<string> {
  const ref = `${DEMO_REPOSITORY}:${DEMO_TAG}`;
  const manifestURL = `${registryURL}/v2/${DEMO_REPOSITORY}/manifests/${DEMO_TAG}`;
  const head = await fetch(manifestURL, { method: 'HEAD', headers: { accept: MANIFEST_TYPE, authorization } });
  if (head.ok) return ref;
  const image = await buildDemoImage();
  for (const blob of image.blobs) {
    const start = await fetch(`${registryURL}/v2/${DEMO_REPOSITORY}/blobs/uploads/`, {
      method: 'POST',
      headers: { authorization },
    });
    await start.arrayBuffer();
    const location = start.headers.get('location');
    if (start.status !== 202 || !location) throw new Error(`demo image: starting an upload answered ${start.status}`);
    const put = new URL(location, registryURL);
    put.searchParams.set('digest', blob.digest);
    const res = await fetch(put, {
      method: 'PUT',
      body: new Uint8Array(blob.data),
      headers: { 'content-type': 'application/octet-stream', authorization },
    });
    await res.arrayBuffer();
    if (res.status !== 201) throw new Error(`demo image: uploading ${blob.digest} answered ${res.status}`);
  }
  const res = await fetch(manifestURL, {
    method: 'PUT',
    body: new Uint8Array(image.manifest),
    headers: { 'content-type': image.manifestType, authorization },
  });
  await res.arrayBuffer();
  if (res.status !== 201) throw new Error(`demo image: storing the manifest answered ${res.status}`);
  return ref;
}
