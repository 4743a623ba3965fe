import type { Identity } from '../identity/types.js';
import type { RouteKind } from '../oci/route.js';
import { isValidDigest } from '../oci/scope.js';
import type { RequestCelContext } from './cel.js';
import { identityVars } from './engine.js';
import { NO_LAZY_READS, type LazyReads } from './reads.js';
import type { MatchedRule, PolicyEngine, RequestRule } from './types.js';

/**
 * Request-time rules (issue 21, CONTRACT §6): the deny rules `phase: request | both`, evaluated by a guard on each
 * `/v2/` request against what the request is about. Pure: the guard gathers the facts (asking the
 * upstream and hashing the body only when `lazyFactsNeeded` says a rule reads them), then calls
 * `decideRequest`. Only deny rules run here: access is granted when the token is issued.
 */

export type RequestKind = 'manifest' | 'blob' | 'upload' | 'tags' | 'referrers' | 'catalog';

/** What the upstream says about the request's tag now (a manifest HEAD), or why there is no answer. */
export type UpstreamLookup = { tagExists: boolean; digest: string } | { error: string };

/**
 * What a guard knows about one `/v2/` request; `request.tag`/`request.digest` derive from `reference`
 * (and, on a manifest PUT, `request.digest` from `bodyDigest`).
 */
export interface RequestFacts {
  method: string;
  kind: RequestKind;
  /** The repository ('' for the catalog). */
  repository: string;
  /** The actions the request needs on it (its route's scope): a rule applies when it lists one. */
  actions: readonly string[];
  /** Tag, digest or upload id as routed ('' when the route has none). */
  reference: string;
  /** The request's Content-Type ('' when none). */
  mediaType: string;
  /** The request's Content-Length (undefined when it declares none: CEL sees -1). */
  contentLength?: number;
  /** request.upstream: the configured upstream's name. */
  upstream: string;
  service: string;
  clientIP: string;
  /**
   * The digest of the manifest being PUT, which `request.digest` is on a manifest PUT; set only when
   * lazyFactsNeeded().bodyDigest. On a PUT by digest the guard sets it only once the body hashes to
   * the reference (it refuses the PUT otherwise), so a rule never sees a digest the body does not have.
   */
  bodyDigest?: string;
  /** The upstream's answer for a tag; set only when lazyFactsNeeded().tagExists or .digest. */
  lookup?: UpstreamLookup;
  /** The manifest's signature verdict (the signatures guard); absent: no trust policy applies (false, []). */
  image?: { verified: boolean; signers: readonly string[] };
}

export interface RequestRefusal {
  refused: MatchedRule;
  /** Why, in words: the rule matched, or could not be evaluated (it then refuses: fail closed). */
  reason: string;
}

/** The route's kind as rules name it; ping has no rules (undefined). */
export function requestKind(kind: RouteKind): RequestKind | undefined {
  if (kind === 'ping') return undefined;
  return kind === 'upload-start' ? 'upload' : kind;
}

const applies = (rule: RequestRule, facts: RequestFacts): boolean =>
  rule.actions.includes('*') || facts.actions.includes('*') || rule.actions.some((a) => facts.actions.includes(a));

/** request.tag: a manifest request's reference when it is not a digest ('' = absent). */
const tagOf = (f: RequestFacts): string =>
  f.kind === 'manifest' && f.reference && !isValidDigest(f.reference) ? f.reference : '';
/** Only a manifest PUT has a body digest; the guard hashes nothing else. */
const hasBody = (f: RequestFacts): boolean => f.kind === 'manifest' && f.method === 'PUT';

type LazyName = keyof LazyReads;
/** How a rule's read of an on-demand fact is answered: the value, or a throw (fail closed / probe). */
type Lazy = (name: LazyName) => unknown;

/**
 * The variables of a request-time rule; the on-demand facts are getters that call `lazy`. A fact the
 * request does not have is left out, not "": `has(request.tag)` is then false and a plain read an
 * evaluation error (cel-js treats a missing key and an undefined one alike).
 */
function celVars(identity: Identity, f: RequestFacts, lazy: Lazy): RequestCelContext {
  const tag = tagOf(f);
  const request: RequestCelContext['request'] = {
    type: f.kind === 'catalog' ? 'registry' : 'repository',
    repository: f.repository,
    actions: [...f.actions],
    service: f.service,
    clientIP: f.clientIP,
    upstream: f.upstream,
    method: f.method,
    kind: f.kind,
    reference: f.reference,
    ...(tag ? { tag } : {}),
    mediaType: f.mediaType,
    contentLength: BigInt(f.contentLength ?? -1),
  };
  // A manifest PUT: the pushed manifest's digest, hashed only when read (by tag or by digest: on a
  // PUT by digest the guard checks the body hashes to it). Otherwise the digest the reference names.
  if (hasBody(f))
    Object.defineProperty(request, 'digest', { enumerable: true, get: () => lazy('bodyDigest') as string });
  else if (isValidDigest(f.reference)) request.digest = f.reference;
  return {
    ...identityVars(identity),
    request,
    image: { verified: f.image?.verified ?? false, signers: [...(f.image?.signers ?? [])] },
    // No tag, nothing to ask: a digest reference exists or not by content, not by name.
    upstream: {
      get tagExists() {
        return tag ? (lazy('tagExists') as boolean) : false;
      },
      get digest() {
        return tag ? (lazy('digest') as string) : '';
      },
    },
  };
}

/** The fact as the guard supplied it, or a throw naming why it is missing (the rule then refuses). */
function supplied(f: RequestFacts): Lazy {
  return (name) => {
    if (name === 'bodyDigest') {
      if (f.bodyDigest === undefined)
        throw new Error('request.digest unknown: the pushed manifest was not hashed (policy test: give --digest)');
      return f.bodyDigest;
    }
    if (f.lookup === undefined) throw new Error(`upstream.${name} unknown: the upstream was not asked`);
    if ('error' in f.lookup) throw new Error(`upstream.${name} unknown: ${f.lookup.error}`);
    return f.lookup[name];
  };
}

const firstLine = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();

/**
 * Why a rule could not be evaluated, in words: cel-js says "No such key: tag" for a read of an
 * absent request.tag/request.digest; name the field, why it is absent and the fix.
 */
function evaluationError(err: unknown, f: RequestFacts): string {
  const line = firstLine(err);
  const key = /^No such key: (tag|digest)$/.exec(line)?.[1];
  if (key === 'tag' && !tagOf(f))
    return `request.tag is absent (${f.reference ? 'the reference is a digest' : 'this request names no tag'}): guard the read with has(request.tag)`;
  if (key === 'digest' && !hasBody(f) && !isValidDigest(f.reference))
    return `request.digest is absent (${f.reference ? 'the reference is a tag' : 'this request names no digest'}): guard the read with has(request.digest)`;
  return line;
}

const matched = (r: RequestRule): MatchedRule => ({ name: r.name, effect: r.effect, actions: r.actions, file: r.file });

/**
 * The first request-time rule (policy order) that refuses this request, or undefined. A rule whose
 * `when` fails (a fact the upstream could not give, a missing claim) or is not a bool refuses too.
 */
export function decideRequest(
  engine: PolicyEngine,
  identity: Identity,
  facts: RequestFacts,
): RequestRefusal | undefined {
  let vars: RequestCelContext | undefined;
  for (const rule of engine.requestRules) {
    if (!applies(rule, facts)) continue;
    if (!rule.evaluate) return { refused: matched(rule), reason: `denied by rule ${rule.name}` };
    vars ??= celVars(identity, facts, supplied(facts));
    let result: unknown;
    try {
      result = rule.evaluate(vars);
    } catch (err) {
      return {
        refused: matched(rule),
        reason: `rule ${rule.name} could not be evaluated, so it refuses: ${evaluationError(err, facts)}`,
      };
    }
    if (result === true) return { refused: matched(rule), reason: `denied by rule ${rule.name}` };
    if (result !== false)
      return { refused: matched(rule), reason: `rule ${rule.name} did not evaluate to a bool, so it refuses` };
  }
  return undefined;
}

class Pending extends Error {}

/**
 * Which on-demand facts this request's rules read (pure): the guard HEADs the upstream only for
 * tagExists/digest and hashes the body only for bodyDigest. Each rule that reads one is evaluated
 * with the facts withheld; one that finishes without touching them does not depend on them (a GET
 * under a PUT-only rule), one that touches any needs all it reads (evaluation stopped at the first).
 */
export function lazyFactsNeeded(engine: PolicyEngine, identity: Identity, facts: RequestFacts): LazyReads {
  const needed: LazyReads = { ...NO_LAZY_READS };
  const tagged = tagOf(facts) !== '';
  const body = hasBody(facts);
  let touched = false;
  const withhold = (): never => {
    touched = true;
    throw new Pending('withheld');
  };
  let vars: RequestCelContext | undefined;
  for (const rule of engine.requestRules) {
    const { tagExists, digest, bodyDigest } = rule.reads;
    if (!rule.evaluate || !applies(rule, facts) || !((tagged && (tagExists || digest)) || (body && bodyDigest)))
      continue;
    touched = false;
    vars ??= celVars(identity, facts, withhold);
    try {
      rule.evaluate(vars);
    } catch {
      // an error without a touch is decideRequest's to report
    }
    if (!touched) continue;
    needed.tagExists ||= tagged && tagExists;
    needed.digest ||= tagged && digest;
    needed.bodyDigest ||= body && bodyDigest;
  }
  return needed;
}
