import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { DEFAULT_NAME, register } from '../../src/cli/credential-provider-install.js';

/**
 * The pieces that put the kubelet credential provider on a node name one path and one file between
 * them: the installer DaemonSet's hostPath and `install` arguments, the kubelet flag and provider
 * name in both sample configs, the README, the executable's install mode and the image (Dockerfile
 * target `credential-provider`) that carries it. Nothing runs here;
 * test/integration/cli/credential-provider-sea.test.ts runs the executable's install mode and
 * test/integration/container-image.test.ts the image.
 */
const DIR = 'deploy/credential-provider';
const read = (file: string) => readFileSync(file, 'utf8');
const CONFIGS = [`${DIR}/credential-provider-config.yaml`, `${DIR}/credential-provider-config-node.yaml`];

const ds = parse(read(`${DIR}/daemonset.yaml`));
const spec = ds.spec.template.spec;
const install = spec.containers.find((c: any) => c.name === 'install');
const args: string[] = install.args;
/** The value of `--<flag>` in the install container's arguments. */
const arg = (flag: string): string | undefined => {
  const i = args.indexOf(`--${flag}`);
  return i < 0 ? undefined : args[i + 1];
};
const hostPathVolume = spec.volumes.find((v: any) => v.hostPath);
const binDirFlags = (text: string) => [...text.matchAll(/--image-credential-provider-bin-dir=(\S+)/g)].map((m) => m[1]);
/** The Dockerfile's `credential-provider` stage. */
const dockerfileStage = (name: string): string => {
  const text = read('Dockerfile');
  const start = text.search(new RegExp(`^FROM \\S+ AS ${name}$`, 'm'));
  expect(start, name).toBeGreaterThanOrEqual(0);
  const next = text.slice(start + 1).search(/^FROM /m);
  return next < 0 ? text.slice(start) : text.slice(start, start + 1 + next);
};

describe('kubelet credential provider install', () => {
  it('the DaemonSet writes into the bin dir the kubelet flag names, in every sample config and the README', () => {
    const hostDir = hostPathVolume.hostPath.path;
    expect(hostDir).toBe('/usr/local/lib/kubelet-credential-providers');
    for (const f of [...CONFIGS, `${DIR}/README.md`]) {
      expect(binDirFlags(read(f)), f).not.toHaveLength(0);
      for (const flag of binDirFlags(read(f))) expect(flag, f).toBe(hostDir);
    }
    const mount = install.volumeMounts.find((m: any) => m.name === hostPathVolume.name);
    expect(arg('dir')).toBe(mount.mountPath);
    expect(read(`${DIR}/README.md`)).toContain(`${hostDir}/registry-auth-proxy credential-provider`);
  });

  it('installs under the name kubelet runs: the provider name of both configs, with args the executable takes', () => {
    const installed = arg('name') ?? DEFAULT_NAME;
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

  it("the DaemonSet's arguments are the install mode's: its flags, --wait, the image's default command", () => {
    const program = new Command();
    register(program);
    const mode = program.commands.find((c) => c.name() === 'install')!;
    const flags = mode.options.map((o) => o.long);
    expect(args[0]).toBe('install');
    for (const a of args.slice(1).filter((x) => x.startsWith('--'))) expect(flags, a).toContain(a);
    // the pod stays Running after the copy, so the DaemonSet rolls a new version out node by node
    expect(args).toContain('--wait');
    expect(mode.options.filter((o) => o.mandatory).map((o) => o.long)).toEqual(['--dir']);
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfileStage('credential-provider'))![1]!;
    expect(JSON.parse(cmd)).toEqual(args);
  });

  it('runs the executable alone, as root with no capabilities, a read-only root and one hostPath', () => {
    expect(spec.initContainers ?? []).toEqual([]);
    expect(spec.containers).toHaveLength(1);
    // no shell in the image: the image's entrypoint, never a command
    expect(install.command).toBeUndefined();
    expect(spec.volumes.filter((v: any) => v.hostPath)).toHaveLength(1);
    expect(hostPathVolume.hostPath.type).toBe('DirectoryOrCreate');
    expect(install.volumeMounts).toHaveLength(1);
    expect(install.securityContext).toMatchObject({
      runAsUser: 0,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
  });

  it("runs the credential provider's image: the Dockerfile's scratch stage holding only the executable, named after the proxy's image", () => {
    const proxyImage: string = parse(read('deploy/base/deployment.yaml')).spec.template.spec.containers[0].image;
    const [repo, tag] = proxyImage.split(/:(?=[^:/]+$)/);
    expect(install.image).toBe(`${repo}-credential-provider:${tag}`);
    expect(install.image).toBe('ghcr.io/registry-auth-proxy/registry-auth-proxy-credential-provider:0.1.0');
    const stage = dockerfileStage('credential-provider');
    expect(stage).toMatch(/^FROM scratch AS credential-provider$/m);
    expect(stage.match(/^COPY .*/gm)).toEqual(['COPY --from=credential-provider-build /rootfs/ /']);
    const build = read('scripts/build-credential-provider.sh');
    const exe = /^EXE=\$OUT_DIR\/(\S+)$/m.exec(build)![1]!;
    expect(stage).toContain(`ENTRYPOINT ["/${exe}"]`);
    expect(dockerfileStage('credential-provider-build')).toContain(`/rootfs /${exe}`);
    expect(read('scripts/build-image.sh')).toContain(
      'cp_tag=${cp_tag:-registry-auth-proxy-credential-provider:$version}',
    );
    expect(parse(read(`${DIR}/kustomization.yaml`)).resources).toEqual(['daemonset.yaml']);
  });

  it('the default build output (tens of MB) stays out of the npm package', () => {
    const build = read('scripts/build-credential-provider.sh');
    expect(build).toMatch(/^OUT_DIR=\$\{OUT_DIR:-\$ROOT\/dist\/credential-provider\}$/m);
    expect(JSON.parse(read('package.json')).files).toContain('!dist/credential-provider');
  });
});
