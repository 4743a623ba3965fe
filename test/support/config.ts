import { buildConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/errors.js';

/** `keyPath: problem` of the ConfigError a raw config file gives, or `no error`. */
export function configProblem(raw: Record<string, unknown>): string {
  try {
    buildConfig(raw, {}, 'rap.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return `${err.keyPath}: ${err.problem}`;
    throw err;
  }
  return 'no error';
}
