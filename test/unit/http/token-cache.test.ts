import { describe, expect, it } from 'vitest';
import { TokenCache } from '../../../src/http/token-cache.js';

/** Issue 11 item 5: one cache for identity, registry-token and upstream-token work. */
describe('TokenCache: per-entry expiry and one load per key', () => {
  it('drops an entry from its `until` on, on the injected clock', () => {
    let now = 1_000_000;
    const c = new TokenCache<string>(10_000, () => now);
    c.set('k', 'v', 'token', now + 5000);
    now += 4999;
    expect(c.get('k')).toBe('v');
    now += 1;
    expect(c.get('k')).toBeUndefined();
    expect(c.usage().entries).toBe(0);
  });

  it('does not keep a value that is already expired (a cacheTTL of 0 caches nothing)', () => {
    const now = 1_000_000;
    const c = new TokenCache<string>(10_000, () => now);
    c.set('k', 'v', 'token', now);
    expect(c.get('k')).toBeUndefined();
  });

  it('loads once for concurrent callers, and does not cache a failure', async () => {
    const c = new TokenCache<string>(10_000);
    let loads = 0;
    const load = async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 10));
      return { value: `v${loads}`, until: Date.now() + 60_000, token: 'token' };
    };
    const all = await Promise.all([c.getOrLoad('k', load), c.getOrLoad('k', load), c.getOrLoad('k', load)]);
    expect(all).toEqual(['v1', 'v1', 'v1']);
    expect(loads).toBe(1);
    expect(await c.getOrLoad('k', load)).toBe('v1');

    const failing = async (): Promise<never> => {
      loads++;
      throw new Error('upstream down');
    };
    await expect(Promise.all([c.getOrLoad('f', failing), c.getOrLoad('f', failing)])).rejects.toThrow('upstream down');
    expect(loads).toBe(2);
    expect(await c.getOrLoad('f', load)).toBe('v3');
  });
});
