import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../../src/config/load.js';
import { ecrRegionOf } from '../../../src/upstream/kinds/ecr.js';
import { configProblem } from '../../support/config.js';

const problem = configProblem;

describe('ECR upstream auth', () => {
  it('reads the region from the registry host', () => {
    expect(ecrRegionOf('https://123456789012.dkr.ecr.eu-west-1.amazonaws.com')).toBe('eu-west-1');
    expect(ecrRegionOf('https://123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com')).toBe('us-gov-west-1');
    expect(ecrRegionOf('https://123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/prefix')).toBe('cn-north-1');
    expect(ecrRegionOf('https://registry.example.com')).toBeUndefined();
    expect(ecrRegionOf('https://123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.test')).toBeUndefined();
  });

  it('is configured with an optional, checked region and nothing else', () => {
    const url = 'https://123456789012.dkr.ecr.eu-west-1.amazonaws.com';
    expect(buildConfig({ upstream: { url, auth: { type: 'ecr' } } }).upstreams[0]?.auth).toEqual({ type: 'ecr' });
    expect(buildConfig({ upstream: { url, auth: { type: 'ecr', region: 'us-east-2' } } }).upstreams[0]?.auth).toEqual({
      type: 'ecr',
      region: 'us-east-2',
    });
    expect(problem({ upstream: { url, auth: { type: 'ecr', region: 'Ireland' } } })).toBe(
      'upstream.auth.region: "Ireland" is not an AWS region (like eu-west-1)',
    );
    expect(problem({ upstream: { url, auth: { type: 'ecr', passwordFile: '/p' } } })).toMatch(/^upstream\.auth/);
    expect(problem({ upstream: { url, auth: { type: 'ecs' } } })).toMatch(/"ecs" is not one of .*\becr\b/);
  });
});
