import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { parse } from 'yaml';

/**
 * The pieces that put the kubelet credential provider on a node name one path and one file between
 * them: the installer DaemonSet's hostPath and target, the kubelet flag and provider name in both
 * sample configs, the README, the build script's output and the image it copies from. Nothing runs
 * here; test/integration/cli/credential-provider-sea.test.ts runs the executable and the installer.
 */
const DIR = 'deploy/credential-provider';
const read = (file: string) => readFileSync(file, 'utf8');
const CONFIGS = [`${DIR}/credential-provider-config.yaml`, `${DIR}/credential-provider-config-node.yaml`];

const ds = parse(read(`${DIR}/daemonset.yaml`));
const spec = ds.spec.template.spec;
const install = spec.initContainers.find((c: any) => c.name === 'install');
const script: string = install.args[0];
/** The script's shell variables (`src=…`, `dst="$dir/…"`), expanded. */
const vars: Record<string, string> = {};
for (const m of script.matchAll(/^(\w+)=(.+)$/gm)) vars[m[1]!] = m[2]!.replace(/^"|"$/g, '').replace(/\$(\w+)/g, (_, v: string) => vars[v] ?? '');
const assigned = (name: string) => {
  if (vars[name] === undefined) throw new Error(`the install script sets no ${name}`);
  return vars[name];
};
const hostPathVolume = spec.volumes.find((v: any) => v.hostPath);
const binDirFlags = (text: string) => [...text.matchAll(/--image-credential-provider-bin-dir=(\S+)/g)].map((m) => m[1]);

describe('kubelet credential provider install', () => {
  it('the DaemonSet writes into the bin dir the kubelet flag names, in every sample config and the README', () => {
    const hostDir = hostPathVolume.hostPath.path;
    expect(hostDir).toBe('/usr/local/lib/kubelet-credential-providers');
    for (const f of [...CONFIGS, `${DIR}/README.md`]) {
      expect(binDirFlags(read(f)), f).not.toHaveLength(0);
      for (const flag of binDirFlags(read(f))) expect(flag, f).toBe(hostDir);
    }
    const mount = install.volumeMounts.find((m: any) => m.name === hostPathVolume.name);
    expect(assigned('dir')).toBe(mount.mountPath);
    expect(read(`${DIR}/README.md`)).toContain(`${hostDir}/registry-auth-proxy credential-provider`);
  });

  it('installs under the name kubelet runs: the provider name of both configs, with args the executable takes', () => {
    const installed = posix.basename(assigned('dst'));
    for (const f of CONFIGS) {
      const config = parse(read(f));
      expect(config.kind, f).toBe('CredentialProviderConfig');
      for (const p of config.providers) {
        expect(p.name, f).toBe(installed);
        // credential-provider-main.ts takes `credential-provider` as its first argument, or none.
        expect(p.args ?? [], f).toEqual(['credential-provider']);
      }
    }
  });

  it('renames into place from the same directory, and writes nothing else', () => {
    expect(posix.dirname(assigned('tmp'))).toBe(posix.dirname(assigned('dst')));
    expect(
      script
        .trim()
        .split('\n')
        .filter((l) => /\b(cp|mv|install|ln|rm|tee)\b|>\s*[^&/]/.test(l) && !/>\/dev\/null/.test(l)),
    ).toEqual(['cp "$src" "$tmp"', 'mv -f "$tmp" "$dst"']);
    expect(spec.volumes.filter((v: any) => v.hostPath)).toHaveLength(1);
    expect(hostPathVolume.hostPath.type).toBe('DirectoryOrCreate');
    for (const c of spec.containers) expect(c.volumeMounts ?? [], c.name).toEqual([]);
    expect(install.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  });

  it('copies what the build script writes, from the image the proxy runs', () => {
    const build = read('scripts/build-credential-provider.sh');
    const out = /^EXE=\$OUT_DIR\/(\S+)$/m.exec(build)![1];
    expect(posix.basename(assigned('src'))).toBe(out);
    const proxyImage = parse(read('deploy/base/deployment.yaml')).spec.template.spec.containers[0].image;
    for (const c of [...spec.initContainers, ...spec.containers]) expect(c.image, c.name).toBe(proxyImage);
    expect(parse(read(`${DIR}/kustomization.yaml`)).resources).toEqual(['daemonset.yaml']);
  });

  it('the default build output (tens of MB) stays out of the npm package', () => {
    const build = read('scripts/build-credential-provider.sh');
    expect(build).toMatch(/^OUT_DIR=\$\{OUT_DIR:-\$ROOT\/dist\/credential-provider\}$/m);
    expect(JSON.parse(read('package.json')).files).toContain('!dist/credential-provider');
  });
});
