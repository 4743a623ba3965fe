import type { Identity } from '../identity/types.js';
import type { RouteKind } from '../oci/route.js';
import { isValidDigest } from '../oci/scope.js';
import type { RequestCelContext } from './cel.js';
import { identityVars } from './engine.js';
import { NO_LAZY_READS, type LazyReads } from './reads.js';
import type { MatchedRule, PolicyEngine, RequestRule } from './types.js';

/**
 * Request-time rules (issue 21): the deny rules `at: request | both`, evaluated by a guard on each
 * `/v2/` request against what the request is about. Pure: the guard gathers the facts (asking the
 * upstream and hashing the body only when `lazyFactsNeeded` says a rule reads them), then calls
 * `decideRequest`. Only deny rules run here: access is granted when the token is issued.
 */

export type RequestKind = 'manifest' | 'blob' | 'upload' | 'tags' | 'referrers' | 'catalog';

/** What the upstream says about the request's tag now (a manifest HEAD), or why there is no answer. */
export type UpstreamLookup = { tagExists: boolean; digest: string } | { error: string };

/** What a guard knows about one `/v2/` request; `request.tag`/`request.digest` derive from `reference`. */
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
  /** `sha256:…` of the manifest being PUT; set only when lazyFactsNeeded().bodyDigest. */
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

const digestOf = (f: RequestFacts): string => (isValidDigest(f.reference) ? f.reference : '');
const tagOf = (f: RequestFacts): string => (f.kind === 'manifest' && !isValidDigest(f.reference) ? f.reference : '');
/** Only a manifest PUT has a body digest to compare; the guard hashes nothing else. */
const hasBody = (f: RequestFacts): boolean => f.kind === 'manifest' && f.method === 'PUT';

type LazyName = keyof LazyReads;
/** How a rule's read of an on-demand fact is answered: the value, or a throw (fail closed / probe). */
type Lazy = (name: LazyName) => unknown;

/** The variables of a request-time rule; the on-demand facts are getters that call `lazy`. */
function celVars(identity: Identity, f: RequestFacts, lazy: Lazy): RequestCelContext {
  const tag = tagOf(f);
  const body = hasBody(f);
  return {
    ...identityVars(identity),
    request: {
      type: f.kind === 'catalog' ? 'registry' : 'repository',
      repository: f.repository,
      actions: [...f.actions],
      service: f.service,
      clientIP: f.clientIP,
      upstream: f.upstream,
      method: f.method,
      kind: f.kind,
      reference: f.reference,
      tag,
      digest: digestOf(f),
      mediaType: f.mediaType,
      contentLength: BigInt(f.contentLength ?? -1),
      get bodyDigest() {
        return body ? (lazy('bodyDigest') as string) : '';
      },
    },
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
      if (f.bodyDigest === undefined) throw new Error('request.bodyDigest was not computed');
      return f.bodyDigest;
    }
    if (f.lookup === undefined) throw new Error(`upstream.${name} unknown: the upstream was not asked`);
    if ('error' in f.lookup) throw new Error(`upstream.${name} unknown: ${f.lookup.error}`);
    return f.lookup[name];
  };
}

const firstLine = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();

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
        reason: `rule ${rule.name} could not be evaluated, so it refuses: ${firstLine(err)}`,
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
