import { mkdirSync, statSync } from 'node:fs';
import { ConfigError } from '../config/errors.js';
import { extendConfig, upstreamConfig } from '../config/load.js';
import type { Config, UpstreamConfig } from '../config/types.js';
import { defaultUpstream } from '../config/upstreams.js';
import type { Logger } from '../log.js';
import { devBanner } from './banner.js';
import { DEV_ISSUER_NAME, devPaths, stateDirProblem } from './defaults.js';
import { seedDemoImage } from './demo-image.js';
import { createDevIssuer, ensureDevSigningKey } from './issuer.js';
import { DevSetupError } from './registry-binary.js';
import { startEmbeddedRegistry, type EmbeddedRegistry } from './registry.js';

export interface DevSession {
  /** The text `serve` prints once it listens. */
  banner: string;
  /** The embedded registry, when `--dev` runs one (no upstream configured). */
  registry?: EmbeddedRegistry;
  /** The loaded config with what `--dev` adds: the dev issuer, the embedded registry, a kept signing key. */
  config: Config;
  stop(): Promise<void>;
}

interface DevOptions {
  stateDir: string;
  logger: Logger;
  /** How to run this CLI again (for the `verify --dev` line). */
  cli: string;
  /** `verify --dev` arguments that find this state directory (empty for the default). */
  verifyArgs: string[];
  env?: NodeJS.ProcessEnv;
}

/**
 * Everything `--dev` adds to a loaded config before the runtime starts: the embedded registry when
 * no upstream is configured (seeded with a demo image), a persistent signing key when none is
 * configured, and the dev issuer with a fresh token in the state directory. Returns them as a new
 * config (a loaded Config is frozen).
 */
export async function setUpDev(loaded: Config, o: DevOptions): Promise<DevSession> {
  if (loaded.issuers.some((i) => i.name === DEV_ISSUER_NAME)) {
    throw new ConfigError(
      loaded.file,
      'issuers',
      `"${DEV_ISSUER_NAME}" is the embedded issuer's name with --dev: rename that issuer`,
    );
  }
  const paths = devPaths(o.stateDir);
  mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
  // An existing directory is used as it is found: check it before reading or writing anything in it.
  const st = statSync(paths.stateDir);
  const problem = process.getuid
    ? stateDirProblem(paths.stateDir, { uid: st.uid, mode: st.mode, isDirectory: st.isDirectory() }, process.getuid())
    : undefined;
  if (problem) throw new DevSetupError(problem);
  let registry: EmbeddedRegistry | undefined;
  let demoRef: string | undefined;
  let upstream: UpstreamConfig | undefined;
  if (!defaultUpstream(loaded.upstreams)) {
    registry = await startEmbeddedRegistry(paths, o.logger, o.env);
    upstream = { ...upstreamConfig(registry.url), auth: registry.auth };
    try {
      demoRef = await seedDemoImage(registry.url, registry.authorization);
    } catch (err) {
      await registry.stop();
      throw err;
    }
  }
  const signingKeyFile = loaded.tokens.signingKeyFile ?? ensureDevSigningKey(paths.signingKey);
  const dev = await createDevIssuer(loaded, paths);
  const config = extendConfig(loaded, { upstream, signingKeyFile, issuers: [dev.issuer] });
  o.logger.info({ tokenFile: paths.token, jwks: paths.jwks, stateDir: paths.stateDir }, 'dev identity token written');
  return {
    banner: devBanner({
      publicURL: config.publicURL,
      tokenFile: paths.token,
      subject: 'developer',
      expiresAt: dev.expiresAt,
      upstream: defaultUpstream(config.upstreams)!.url,
      embeddedData: registry ? paths.registryData : undefined,
      demoRef,
      cli: o.cli,
      verifyArgs: o.verifyArgs,
    }),
    registry,
    config,
    stop: async () => registry?.stop(),
  };
}
