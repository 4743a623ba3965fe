import { mkdirSync } from 'node:fs';
import { ConfigError } from '../config/errors.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import { devBanner } from './banner.js';
import { DEV_ISSUER_NAME, devPaths } from './defaults.js';
import { seedDemoImage } from './demo-image.js';
import { createDevIssuer, ensureDevSigningKey } from './issuer.js';
import { startEmbeddedRegistry, type EmbeddedRegistry } from './registry.js';

export interface DevSession {
  /** The text `serve` prints once it listens. */
  banner: string;
  /** The embedded registry, when `--dev` runs one (no upstream configured). */
  registry?: EmbeddedRegistry;
  stop(): Promise<void>;
}

export interface DevOptions {
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
 * configured, and the dev issuer with a fresh token in the state directory. Mutates `config`.
 */
export async function setUpDev(config: Config, o: DevOptions): Promise<DevSession> {
  if (config.issuers.some((i) => i.name === DEV_ISSUER_NAME)) {
    throw new ConfigError(config.file, 'issuers', `"${DEV_ISSUER_NAME}" is the embedded issuer's name with --dev: rename that issuer`);
  }
  const paths = devPaths(o.stateDir);
  mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
  let registry: EmbeddedRegistry | undefined;
  let demoRef: string | undefined;
  if (!config.upstream) {
    registry = await startEmbeddedRegistry(paths, o.logger, o.env);
    config.upstream = { url: registry.url, auth: { type: 'none' }, timeout: 30_000 };
    try {
      demoRef = await seedDemoImage(registry.url);
    } catch (err) {
      await registry.stop();
      throw err;
    }
  }
  config.tokens.signingKeyFile ??= ensureDevSigningKey(paths.signingKey);
  const dev = await createDevIssuer(config, paths);
  config.issuers.push(dev.issuer);
  o.logger.info({ tokenFile: paths.token, jwks: paths.jwks, stateDir: paths.stateDir }, 'dev identity token written');
  return {
    banner: devBanner({
      publicURL: config.publicURL,
      tokenFile: paths.token,
      subject: 'developer',
      expiresAt: dev.expiresAt,
      upstream: config.upstream.url,
      embeddedData: registry ? paths.registryData : undefined,
      demoRef,
      cli: o.cli,
      verifyArgs: o.verifyArgs,
    }),
    registry,
    stop: async () => registry?.stop(),
  };
}
