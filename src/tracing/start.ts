import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Tracing } from './types.js';

/**
 * Tracing when `tracing:` is configured, else undefined. The OpenTelemetry SDK and exporter are
 * imported only then: a proxy without tracing neither loads them (start-up RSS) nor pays for them
 * per request (the paths skip every stage on `undefined`).
 */
export async function startTracing(config: Config, logger: Logger): Promise<Tracing | undefined> {
  if (!config.tracing) return undefined;
  return (await import('./sdk.js')).createTracing(config.tracing, logger);
}
