import { execFileSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Logger } from '../log.js';

/** The Debian/Ubuntu package that ships Distribution's registry as /usr/bin/docker-registry. */
const REGISTRY_PACKAGE = 'docker-registry';
const REGISTRY_NAMES = ['docker-registry'];

type RegistryBinaryPlan =
  { action: 'use'; path: string } | { action: 'install'; command: string[] } | { action: 'fail'; message: string };

/**
 * What to do about the registry binary. Pure: the caller looks things up. RAP_DEV_REGISTRY names
 * it explicitly (and must then exist); else PATH; else root with apt-get installs the Debian
 * package, as the test suite does; else the exact command to run.
 */
export function registryBinaryPlan(s: {
  explicit?: string;
  explicitUsable?: boolean;
  found?: string;
  isRoot: boolean;
  hasAptGet: boolean;
}): RegistryBinaryPlan {
  if (s.explicit) {
    return s.explicitUsable
      ? { action: 'use', path: s.explicit }
      : { action: 'fail', message: `RAP_DEV_REGISTRY=${s.explicit} is not an executable file` };
  }
  if (s.found) return { action: 'use', path: s.found };
  if (s.isRoot && s.hasAptGet)
    return { action: 'install', command: ['apt-get', 'install', '-y', '--no-install-recommends', REGISTRY_PACKAGE] };
  return {
    action: 'fail',
    message:
      '--dev without --upstream runs the Distribution registry, and docker-registry is not installed. ' +
      (s.hasAptGet
        ? `Install it with: sudo apt-get install -y ${REGISTRY_PACKAGE}`
        : 'Install the Distribution registry (https://distribution.github.io/distribution/) and set RAP_DEV_REGISTRY to its path') +
      ', or point --upstream at a registry you run.',
  };
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** First executable `name` on PATH, then in /usr/bin and /usr/sbin (sudo's PATH may lack them). */
export function findOnPath(names: string[], env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/bin', '/usr/sbin'];
  for (const name of names) for (const dir of dirs) if (executable(join(dir, name))) return join(dir, name);
  return undefined;
}

/** Finds (or, as root with apt-get, installs) the registry binary; throws with the install command otherwise. */
export function resolveRegistryBinary(logger: Logger, env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.RAP_DEV_REGISTRY || undefined;
  const plan = registryBinaryPlan({
    explicit,
    explicitUsable: explicit ? executable(explicit) : undefined,
    found: findOnPath(REGISTRY_NAMES, env),
    isRoot: process.getuid?.() === 0,
    hasAptGet: findOnPath(['apt-get'], env) !== undefined,
  });
  if (plan.action === 'use') return plan.path;
  if (plan.action === 'fail') throw new DevSetupError(plan.message);
  logger.warn(
    { command: plan.command.join(' ') },
    'docker-registry is missing: installing it with apt-get (running as root)',
  );
  const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'inherit'], env: aptEnv });
    execFileSync(plan.command[0]!, plan.command.slice(1), { stdio: ['ignore', 'ignore', 'inherit'], env: aptEnv });
  } catch (err) {
    throw new DevSetupError(
      `installing ${REGISTRY_PACKAGE} failed (${(err as Error).message}); install it yourself or use --upstream`,
    );
  }
  const installed = findOnPath(REGISTRY_NAMES, env);
  if (!installed)
    throw new DevSetupError(`apt-get installed ${REGISTRY_PACKAGE} but docker-registry is still not on PATH`);
  return installed;
}

/** `--dev` cannot be set up as asked: the CLI exits 2 with this message. */
export class DevSetupError extends Error {}
