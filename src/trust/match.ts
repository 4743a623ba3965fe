/** Which policies apply to a repository: glob matching, pure. */

/** `*` matches within one segment, `**` any number of whole segments (none included). */
export function globToRegExp(glob: string): RegExp {
  const segments = glob.split('/');
  let re = '';
  segments.forEach((seg, i) => {
    const last = i === segments.length - 1;
    if (seg === '**') {
      // `a/**` also matches `a` itself? No: a policy on `prod/**` is about what is under prod/.
      re += last ? (i === 0 ? '.*' : '/.+') : i === 0 ? '(?:[^/]+/)*' : '(?:/[^/]+)*/';
      return;
    }
    const body = seg
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\-]/g, '\\$&'))
      .join('[^/]*');
    re += (i === 0 || segments[i - 1] === '**' ? '' : '/') + body;
  });
  return new RegExp(`^${re}$`);
}

interface Matchable {
  repositories: readonly string[];
}

/**
 * Every policy whose globs match `repository`: all of them apply, so adding a policy can only add
 * requirements (first-match would let a narrow entry placed early silently weaken a broad one).
 */
export function policiesFor<P extends Matchable>(
  policies: readonly (P & { patterns: readonly RegExp[] })[],
  repository: string,
): P[] {
  return policies.filter((p) => p.patterns.some((re) => re.test(repository)));
}

/**
 * Whether a verified certificate identity is this keyless anchor's: issuer exact; subject exact, or
 * the pattern found in it (searched, as cosign's --certificate-identity-regexp). Pure.
 */
export function identityMatches(
  anchor: { issuer: string; subject: string | RegExp },
  identity: { issuer: string; subject: string },
): boolean {
  if (identity.issuer !== anchor.issuer) return false;
  return typeof anchor.subject === 'string'
    ? identity.subject === anchor.subject
    : anchor.subject.test(identity.subject);
}
