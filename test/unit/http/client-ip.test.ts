import { describe, expect, it } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { parseTrustedProxies } from '../../../src/config/net.js';
import { clientIPOf, clientIPResolver } from '../../../src/http/client-ip.js';
import { buildConfig } from '../../../src/config/load.js';

function req(peer: string, xff?: string | string[]): IncomingMessage {
  const list = xff === undefined ? undefined : Array.isArray(xff) ? xff : [xff];
  return {
    socket: { remoteAddress: peer },
    headersDistinct: list ? { 'x-forwarded-for': list } : {},
  } as unknown as IncomingMessage;
}

describe('client IP', () => {
  const behindIngress = clientIPResolver(['10.0.0.0/8', 'fd00::/8']);

  it('is the TCP peer when no proxy is trusted, whatever X-Forwarded-For claims', () => {
    expect(clientIPResolver([])(req('203.0.113.9', '1.2.3.4'))).toBe('203.0.113.9');
    expect(clientIPResolver([])(req('::ffff:203.0.113.9'))).toBe('203.0.113.9');
  });

  it('takes the right-most untrusted hop behind trusted proxies', () => {
    expect(behindIngress(req('10.1.2.3', '198.51.100.7'))).toBe('198.51.100.7');
    expect(behindIngress(req('10.1.2.3', '6.6.6.6, 198.51.100.7, 10.9.9.9'))).toBe('198.51.100.7');
    expect(behindIngress(req('10.1.2.3', ['6.6.6.6', '198.51.100.7']))).toBe('198.51.100.7');
    expect(behindIngress(req('fd00::1', '2001:db8::5'))).toBe('2001:db8::5');
  });

  it('never believes X-Forwarded-For from an untrusted peer, nor garbage in it', () => {
    expect(behindIngress(req('198.51.100.7', '10.1.1.1'))).toBe('198.51.100.7');
    expect(behindIngress(req('10.1.2.3', 'not-an-ip, 10.9.9.9'))).toBe('10.9.9.9');
    expect(behindIngress(req('10.1.2.3'))).toBe('10.1.2.3');
  });

  it('is resolved once per request and read back by clientIPOf', () => {
    const r = req('10.1.2.3', '198.51.100.7');
    behindIngress(r);
    expect(clientIPOf(r)).toBe('198.51.100.7');
    expect(clientIPOf(req('::ffff:192.0.2.1'))).toBe('192.0.2.1');
  });

  it('validates the configured list', () => {
    expect(() => parseTrustedProxies(['10.0.0.0/33'])).toThrow(/prefix/);
    expect(() => parseTrustedProxies(['ingress.local'])).toThrow(/not an IP/);
    expect(buildConfig({ trustedProxies: ['10.0.0.0/8', '::1'] }).trustedProxies).toEqual(['10.0.0.0/8', '::1']);
    expect(() => buildConfig({ trustedProxies: ['10.0.0.0/99'] }, {}, 'c.yaml')).toThrow(/trustedProxies/);
    expect(() => buildConfig({ trustedProxies: '10.0.0.0/8' }, {}, 'c.yaml')).toThrow(/trustedProxies/);
  });
});
