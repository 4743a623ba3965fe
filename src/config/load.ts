import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from './errors.js';
import { buildConfig, type ServeFlags } from './resolve.js';
import type { Config } from './types.js';

/** The config module's entry points; the schema is in schema.ts, the flag overlay in resolve.ts. */

export { buildConfig, extendConfig, upstreamConfig, type ServeFlags } from './resolve.js';
export { defaultPolicyPath, SHIPPED_POLICY_PATH } from './defaults.js';
export { isLoopbackHost } from './net.js';
export { listenExposureProblem, missingIssuerProblem } from './startup.js';

/** Reads the YAML file (if any), applies flags and env on top, validates, returns a frozen Config. Throws ConfigError. */
export function loadConfig(flags: ServeFlags, env: NodeJS.ProcessEnv = process.env): Config {
  const file = flags.config ?? env.RAP_CONFIG ?? undefined;
  return buildConfig(file ? readDocument(file) : {}, flags, file, env);
}

function readDocument(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, '(file)', `cannot read: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(file, '(file)', `not valid YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(file, '(root)', 'must be a mapping');
  return doc as Record<string, unknown>;
}
