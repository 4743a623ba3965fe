import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, DEFAULT_TEST_POLICY, type TestProxy } from '../../helpers/server.js';

/** `effect: audit` through the token endpoint: the grant is what it was, the event and the metric say "would deny". */
let proxy: TestProxy;

beforeAll(async () => {
  proxy = await startProxy({
    policy: `${DEFAULT_TEST_POLICY}
  - name: pushes-need-review-soon
    effect: audit
    actions: [push]
    when: request.repository.endsWith("/app")
`,
  });
});
afterAll(() => proxy?.stop());

describe('effect: audit rules at /token', () => {
  it('grant unchanged; the token event records the rule, and it is counted', async () => {
    const token = await proxy.registryToken(['repository:team-a/app:pull,push']);
    expect(token).toBeTruthy();
    const line = proxy.logs
      .filter((l) => l.includes('"audit":"token"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .pop()!;
    expect(line).toMatchObject({
      result: 'granted',
      granted: ['repository:team-a/app:pull,push'],
      wouldDeny: [{ rule: 'pushes-need-review-soon', scope: 'repository:team-a/app', actions: ['push'] }],
    });
    expect(line.rules).not.toContain('pushes-need-review-soon');
    await proxy.registryToken(['repository:team-a/other:pull,push']);
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
    expect(metrics).toContain('rap_audit_rule_matches_total{rule="pushes-need-review-soon"} 1');
  });
});
