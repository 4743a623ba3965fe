import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { buildConfig } from '../../../src/config/load.js';

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? yamlFiles(p) : /\.ya?ml$/.test(n) ? [p] : [];
  });
}

type Doc = Record<string, any>;

describe('deploy/ manifests', () => {
  it('every YAML document under deploy/ parses', () => {
    const files = yamlFiles('deploy');
    expect(files.length).toBeGreaterThan(10);
    for (const f of files) {
      for (const doc of parseAllDocuments(readFileSync(f, 'utf8'))) expect(doc.errors, f).toEqual([]);
    }
  });

  it('every shipped proxy config passes the config validator', () => {
    const configs = yamlFiles('deploy').filter((f) => f.endsWith('/config.yaml'));
    expect(configs).toEqual(expect.arrayContaining(['deploy/base/config.yaml', 'deploy/overlays/gateway/config.yaml', 'deploy/overlays/sidecar/config.yaml', 'deploy/examples/ecr/config.yaml']));
    for (const f of configs) {
      expect(() => buildConfig(parse(readFileSync(f, 'utf8')), {}, f), f).not.toThrow();
    }
  });

  it('ships the same default policy as policies/', () => {
    expect(readFileSync('deploy/base/policies/default.yaml', 'utf8')).toBe(readFileSync('policies/default.yaml', 'utf8'));
  });

  it('the kubelet credential provider sample config is well-formed', () => {
    const file = 'deploy/credential-provider/credential-provider-config.yaml';
    const doc = parse(readFileSync(file, 'utf8')) as Doc;
    expect(doc).toMatchObject({ apiVersion: 'kubelet.config.k8s.io/v1', kind: 'CredentialProviderConfig' });
    const p = doc.providers[0];
    expect(p).toMatchObject({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1', name: 'registry-auth-proxy' });
    expect(p.matchImages.length).toBeGreaterThan(0);
    expect(p.tokenAttributes).toMatchObject({ requireServiceAccount: true, cacheType: 'ServiceAccount' });
    expect(typeof p.tokenAttributes.serviceAccountTokenAudience).toBe('string');
  });
});
