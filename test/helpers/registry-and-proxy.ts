import { startRegistry, type Registry, type RegistryOptions } from '../fixtures/registry.js';
import { startProxy, type StartProxyOptions, type TestProxy } from './server.js';

/**
 * A real Distribution registry with an in-process proxy in front of it: the set-up of every suite
 * that drives real clients. `stop()` stops both, proxy first, and ignores a half-finished start.
 */
export interface RegistryAndProxy {
  registry: Registry;
  proxy: TestProxy;
  stop(): Promise<void>;
}

interface RegistryAndProxyOptions extends Omit<StartProxyOptions, 'upstream'> {
  registry?: RegistryOptions;
}

export async function startRegistryAndProxy(opts: RegistryAndProxyOptions = {}): Promise<RegistryAndProxy> {
  const { registry: registryOptions, ...proxyOptions } = opts;
  const registry = await startRegistry(registryOptions);
  let proxy: TestProxy;
  try {
    proxy = await startProxy({ ...proxyOptions, upstream: registry.url });
  } catch (err) {
    await registry.stop();
    throw err;
  }
  return {
    registry,
    proxy,
    async stop() {
      await proxy.stop();
      await registry.stop();
    },
  };
}
