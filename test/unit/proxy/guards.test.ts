import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { OciError } from '../../../src/oci/errors.js';
import { classify, isRouteError, type Route } from '../../../src/oci/route.js';
import type { RouteKind } from '../../../src/oci/route-kinds.js';
import {
  guardPlan,
  runGuards,
  scopedGuard,
  withinAuthorized,
  type Guard,
  type GuardContext,
  type GuardUpstream,
} from '../../../src/proxy/guards.js';

const D = `sha256:${'d'.repeat(64)}`;

function route(method: string, path: string, query = ''): Route {
  const r = classify(method, path, query);
  if (isRouteError(r)) throw r;
  return r;
}

const tagged = route('GET', '/v2/team-a/app/manifests/v1');
const pinned = route('GET', `/v2/team-a/app/manifests/${D}`);
const ctx = (r: Route): GuardContext => ({
  req: {} as IncomingMessage,
  route: r,
  grant: {
    identity: undefined,
    anonymous: false,
    access: [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }],
  },
  upstream: { name: '', prefix: '' } as GuardUpstream,
});

const FROZEN = new OciError(403, 'DENIED', 'tag v1 is frozen');
const OTHER = new OciError(403, 'DENIED', 'never reached');

// Small guards, each named: the name is what a refusal is reported under.
const pass: Guard = async () => undefined;
const same: Guard = async ({ route: r }) => r;
const refuse: Guard = async () => FROZEN;
const refuseOther: Guard = async () => OTHER;
const pin: Guard = async ({ route: r }) => (r.reference === 'v1' ? pinned : undefined);
/** Refuses anything still addressed by tag: passes only after `pin` ran. */
const digestsOnly: Guard = async ({ route: r }) =>
  r.reference?.startsWith('sha256:') ? undefined : new OciError(403, 'DENIED', 'tags are not allowed');
const otherRepo: Guard = async () => route('GET', `/v2/team-b/app/manifests/${D}`);

describe('runGuards: refuse, rewrite, pass', () => {
  it.each<[string, Guard[], { route: Route } | { refused: OciError; guard: string }]>([
    ['no guards: the authorized route', [], { route: tagged }],
    ['a guard that passes', [pass], { route: tagged }],
    ['a guard that hands back the same route passes', [same, pass], { route: tagged }],
    ['a refusal', [pass, refuse], { refused: FROZEN, guard: 'refuse' }],
    ['the first refusal wins', [refuse, refuseOther], { refused: FROZEN, guard: 'refuse' }],
    ['a rewrite (tag → digest) is what is forwarded', [pin], { route: pinned }],
    ['a rewrite is what the next guard sees', [pin, digestsOnly], { route: pinned }],
    [
      'without the rewrite, that guard refuses',
      [digestsOnly, pin],
      { refused: expect.any(OciError), guard: 'digestsOnly' },
    ],
    ['a refusal after a rewrite', [pin, refuse], { refused: FROZEN, guard: 'refuse' }],
  ])('%s', async (_name, guards, expected) => {
    expect(await runGuards(guards, ctx(tagged))).toEqual(expected);
  });

  it('refuses a rewrite that leaves what was authorized with a 500, naming the guard, and runs no further guard', async () => {
    let later = false;
    const after: Guard = async () => void (later = true);
    const out = await runGuards([pass, otherRepo, after], ctx(tagged));
    expect(out).toMatchObject({ guard: 'otherRepo', widened: true, refused: { status: 500, code: 'UNKNOWN' } });
    expect(later).toBe(false);
  });

  it('names an anonymous guard by its place in the list', async () => {
    expect(await runGuards([pass, async () => FROZEN], ctx(tagged))).toEqual({ refused: FROZEN, guard: 'guard #1' });
  });
});

describe('withinAuthorized: a rewrite never widens access', () => {
  const upload = route('POST', '/v2/team-a/app/blobs/uploads/');
  it.each<[string, Route, Route, boolean]>([
    ['tag → digest of the same repository', tagged, pinned, true],
    ['manifest → another tag', tagged, route('GET', '/v2/team-a/app/manifests/v2'), true],
    ['another repository', tagged, route('GET', `/v2/team-b/app/manifests/${D}`), false],
    ['another method (push instead of pull)', tagged, route('PUT', `/v2/team-a/app/manifests/${D}`), false],
    ['a HEAD for a GET', tagged, route('HEAD', `/v2/team-a/app/manifests/${D}`), false],
    [
      'scopes widened by hand',
      tagged,
      { ...pinned, scopes: [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }] },
      false,
    ],
    [
      'a path into another repository under the same name',
      tagged,
      { ...pinned, path: `/v2/team-b/app/manifests/${D}` },
      false,
    ],
    ['a path that disagrees with the reference', tagged, { ...pinned, reference: 'v1' }, false],
    [
      'a reference that names nothing',
      tagged,
      { ...pinned, reference: '-x', path: '/v2/team-a/app/manifests/-x' },
      false,
    ],
    ['a mount smuggled into the query', upload, { ...upload, query: `?mount=${D}&from=team-b/base` }, false],
    ['a mount source added', upload, { ...upload, mountFrom: 'team-b/base' }, false],
    ['a query the route would not forward', tagged, { ...pinned, query: '?ns=docker.io' }, false],
  ])('%s', (_name, authorized, rewritten, ok) => {
    expect(withinAuthorized(authorized, rewritten)).toBe(ok);
  });
});

describe('guardPlan: a guard runs only on the requests it declares', () => {
  const putOnly = scopedGuard(
    async function putOnly() {
      return undefined;
    },
    { methods: ['PUT'], kinds: ['manifest'] },
  );
  const reads = scopedGuard(
    async function reads() {
      return undefined;
    },
    { methods: ['GET', 'HEAD'], kinds: ['manifest', 'blob'] },
  );
  const everywhere: Guard = async function everywhere() {
    return undefined;
  };
  const names = (gs: readonly Guard[]): string[] => gs.map((g) => g.name);

  it.each<[string, Guard[], string, RouteKind, string[]]>([
    [
      'manifest PUT: the PUT guard, then the unscoped one',
      [putOnly, reads, everywhere],
      'PUT',
      'manifest',
      ['putOnly', 'everywhere'],
    ],
    ['manifest HEAD: the read guard', [putOnly, reads], 'HEAD', 'manifest', ['reads']],
    ['blob GET', [putOnly, reads], 'GET', 'blob', ['reads']],
    ['blob PUT is not a manifest PUT', [putOnly, reads], 'PUT', 'blob', []],
    ['tags GET: no scoped guard', [putOnly, reads], 'GET', 'tags', []],
    ['an unscoped guard runs on every request', [everywhere], 'PATCH', 'upload', ['everywhere']],
    ['order is the list order', [everywhere, reads], 'GET', 'manifest', ['everywhere', 'reads']],
  ])('%s', (_, guards, method, kind, expected) => {
    expect(names(guardPlan(guards)(method, kind))).toEqual(expected);
  });

  it('decides once per method and kind: the same list object each time', () => {
    const plan = guardPlan([putOnly, reads]);
    expect(plan('GET', 'manifest')).toBe(plan('GET', 'manifest'));
    expect(plan('GET', 'tags')).toHaveLength(0);
  });
});
