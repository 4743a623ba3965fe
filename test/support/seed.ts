import { createHash } from 'node:crypto';
import { request } from 'undici';

export const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

/** Pushes a small blob directly (POST + PUT) and returns its digest. */
export async function pushSmallBlob(base: string, repo: string, data: Buffer): Promise<string> {
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const start = await request(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await start.body.dump();
  const url = new URL(start.headers.location as string, base);
  url.searchParams.set('digest', digest);
  const put = await request(url.toString(), {
    method: 'PUT',
    body: data,
    headers: { 'content-type': 'application/octet-stream' },
  });
  await put.body.dump();
  if (put.statusCode !== 201) throw new Error(`small blob push: HTTP ${put.statusCode}`);
  return digest;
}

/** Seeds `<repo>:latest` — an OCI image manifest with a config and one small layer — directly in the registry. */
export async function seedManifest(base: string, repo: string): Promise<void> {
  const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const layer = Buffer.alloc(1024, 3);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST_TYPE,
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: await pushSmallBlob(base, repo, config),
      size: config.length,
    },
    layers: [
      {
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: await pushSmallBlob(base, repo, layer),
        size: layer.length,
      },
    ],
  });
  const put = await request(`${base}/v2/${repo}/manifests/latest`, {
    method: 'PUT',
    body: manifest,
    headers: { 'content-type': MANIFEST_TYPE },
  });
  await put.body.dump();
  if (put.statusCode !== 201) throw new Error(`manifest push: HTTP ${put.statusCode}`);
}
