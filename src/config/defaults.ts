import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Defaults that are paths or depend on the mode (`--dev`); the plain ones are in the schema. */

export const DEFAULT_LISTEN = '0.0.0.0:8080';

/** `--dev` listens on loopback only, so no publicURL is needed and nothing is exposed. */
export const DEV_LISTEN = '127.0.0.1:8080';

/** The policy `--dev` uses unless a flag or the config file names one: the dev issuer may do anything. */
export const DEV_POLICY_PATH = fileURLToPath(new URL('../../policies/dev', import.meta.url));

/** The policy the package ships (deny by default; Kubernetes namespaces own `<namespace>/…`). */
export const SHIPPED_POLICY_PATH = fileURLToPath(new URL('../../policies/default.yaml', import.meta.url));

/**
 * The policy path when none is configured: `./policies` in the working directory when it exists
 * (a checkout, or the operator's own), else the shipped default — so a globally installed CLI
 * starts anywhere. `serve` logs which one it used.
 */
export function defaultPolicyPath(exists: (path: string) => boolean = existsSync): string {
  return exists('./policies') ? './policies' : SHIPPED_POLICY_PATH;
}
